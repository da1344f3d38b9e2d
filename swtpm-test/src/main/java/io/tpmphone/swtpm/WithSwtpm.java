package io.tpmphone.swtpm;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Inherited;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Gives a JUnit 5 test class its own running swtpm, injected as a {@link SwtpmProcess} parameter of test methods,
 * lifecycle methods and (unless {@link #perMethod()}) the constructor.
 *
 * <pre>{@code
 * @WithSwtpm(ekCertificate = true)
 * class QuoteIT {
 *     @Test
 *     void quoteVerifies(SwtpmProcess tpm) { ... TpmUri.parse(tpm.tpmUri()) ... }
 * }
 * }</pre>
 *
 * <p>The instance is stopped and its directories deleted after the class (or, with {@code perMethod}, after each
 * method), also when tests fail. If swtpm is not installed, the tests fail with {@link SwtpmNotInstalledException}.
 * Nested test classes share the enclosing class's instance. See {@link SwtpmExtension} for the programmatic form.
 */
@Target(ElementType.TYPE)
@Retention(RetentionPolicy.RUNTIME)
@Documented
@Inherited
@ExtendWith(SwtpmExtension.class)
public @interface WithSwtpm {
    /** Manufacture the TPM with RSA-2048 and ECC P-384 EK certificates (see {@link SwtpmProcess}). */
    boolean ekCertificate() default false;

    /** Also add a platform certificate at NV 0x01C08000; implies {@link #ekCertificate()}. */
    boolean platformCertificate() default false;

    /** A fresh swtpm for every test method instead of one for the class. */
    boolean perMethod() default false;
}
