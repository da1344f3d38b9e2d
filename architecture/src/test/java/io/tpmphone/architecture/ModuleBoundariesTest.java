package io.tpmphone.architecture;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.classes;
import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.tngtech.archunit.core.domain.Dependency;
import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.Location;
import com.tngtech.archunit.lang.ArchCondition;
import com.tngtech.archunit.lang.ConditionEvents;
import com.tngtech.archunit.lang.SimpleConditionEvent;
import com.tngtech.archunit.library.GeneralCodingRules;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The public surface of every module, enforced on its compiled main classes (not its tests): a module's
 * {@code …internal} packages are its own (STYLE §1), and the arrows the design forbids (docs/architecture.md) are not
 * drawn — the server has no TPM library, the softphone neither TPM nor keystore, the protocol and attested TLS no TPM,
 * and no product code depends on the benchmarks. A module is its root package {@code io.tpmphone.X} (artifact =
 * package = module): attestation-protocol is {@code attestation}, attestation-server {@code server}, attested-tls
 * {@code tls}, softphone-core {@code softphone}, sealed-keystore {@code keystore}, swtpm-test {@code swtpm}; the others
 * are named as their artifact.
 *
 * <p>Bytecode is what is checked (ArchUnit), so an import that nothing uses is invisible here — and harmless.
 */
@Timeout(value = 2, unit = TimeUnit.MINUTES)
class ModuleBoundariesTest {

    /** The module root packages, each a Maven module of the reactor. */
    private static final Set<String> MODULES = Set.of("attestation", "tpm", "keystore", "agent", "server", "tls",
            "softphone", "swtpm", "rig", "cli", "benchmarks");

    /**
     * Cross-module uses of an internal type that are known and have an owner, by origin module. None today: the rig,
     * which once built the softphone's keys and audit channel from softphone-core's internal {@code BrokerClient},
     * uses its public {@code AgentBroker} (issue 13). Nothing may be added here without such a reason and an owner.
     */
    private static final Map<String, List<String>> KNOWN_INTERNAL_USES = Map.of();

    /** Every main class of every module: test classes and test jars (tpm's test helpers) are left out. */
    private static final JavaClasses MAIN = new ClassFileImporter()
            .withImportOption(ModuleBoundariesTest::isMainCode)
            .importPackages("io.tpmphone");

    private static boolean isMainCode(Location location) {
        String uri = location.asURI().toString();
        return !uri.contains("/test-classes/") && !uri.matches(".*-tests\\.jar.*");
    }

    /** The module of a package in {@code io.tpmphone}, or null for a package outside it. */
    static String module(String packageName) {
        if (!packageName.startsWith("io.tpmphone.")) {
            return null;
        }
        String rest = packageName.substring("io.tpmphone.".length());
        int dot = rest.indexOf('.');
        return dot < 0 ? rest : rest.substring(0, dot);
    }

    static boolean isInternal(String packageName) {
        return packageName.endsWith(".internal") || packageName.contains(".internal.");
    }

    /** Classes that use an internal type of another module (outside {@link #KNOWN_INTERNAL_USES}). */
    static final ArchCondition<JavaClass> USE_ONLY_THEIR_OWN_MODULES_INTERNALS =
            new ArchCondition<>("use internal packages of their own module only") {
                @Override
                public void check(JavaClass origin, ConditionEvents events) {
                    String from = module(origin.getPackageName());
                    for (Dependency d : origin.getDirectDependenciesFromSelf()) {
                        JavaClass target = d.getTargetClass().getBaseComponentType();
                        String to = module(target.getPackageName());
                        if (to == null || to.equals(from) || !isInternal(target.getPackageName())) {
                            continue;
                        }
                        String outer = target.getName().replaceFirst("\\$.*", "");
                        if (KNOWN_INTERNAL_USES.getOrDefault(from, List.of()).contains(outer)) {
                            continue;
                        }
                        events.add(SimpleConditionEvent.violated(d, d.getDescription() + " — " + target.getName()
                                + " is internal to module '" + to + "': use its public package, or give it a public"
                                + " facade there"));
                    }
                }
            };

    @Test
    void theImportSeesEveryModule_soNoRuleHoldsVacuously() {
        Map<String, Integer> perModule = new TreeMap<>();
        for (JavaClass c : MAIN) {
            perModule.merge(String.valueOf(module(c.getPackageName())), 1, Integer::sum);
        }
        assertEquals(new TreeSet<>(MODULES), perModule.keySet(), "classes per module: " + perModule);
        // (JMH generates main classes named …_jmhTest into the benchmarks' jmh_generated package.)
        assertTrue(MAIN.stream().noneMatch(c -> !c.getPackageName().endsWith(".jmh_generated")
                        && c.getSimpleName().matches(".*(Test|IT)")),
                "test classes are not imported");
        assertTrue(MAIN.stream().noneMatch(c -> c.getName().equals("io.tpmphone.tpm.AuthorityKey")),
                "tpm's test-jar (AuthorityKey, which benchmarks use) is not imported");
    }

    @Test
    void internalPackages_areNotUsedByOtherModules() {
        classes().that().resideInAPackage("io.tpmphone..").should(USE_ONLY_THEIR_OWN_MODULES_INTERNALS)
                .because("a module shows one small public package; the rest lives under …internal (STYLE §1)")
                .check(MAIN);
    }

    @Test
    void theServer_hasNoTpmLibrary() {
        noClasses().that().resideInAPackage("io.tpmphone.server..").should().dependOnClassesThat()
                .resideInAnyPackage("io.tpmphone.tpm..", "io.tpmphone.keystore..", "tss..")
                .because("the attestation server appraises evidence; it never talks to a TPM (docs/architecture.md)")
                .check(MAIN);
    }

    @Test
    void theSoftphone_reachesNeitherTheTpmNorTheKeystore() {
        noClasses().that().resideInAPackage("io.tpmphone.softphone..").should().dependOnClassesThat()
                .resideInAnyPackage("io.tpmphone.tpm..", "io.tpmphone.keystore..", "tss..")
                .because("the measured softphone gets keys and quotes from its agent's broker only; it holds no TPM"
                        + " access of its own (docs/architecture.md)")
                .check(MAIN);
    }

    @Test
    void theProtocol_dependsOnNoOtherModule() {
        noClasses().that().resideInAPackage("io.tpmphone.attestation..").should().dependOnClassesThat()
                .resideInAnyPackage("io.tpmphone.tpm..", "io.tpmphone.keystore..", "io.tpmphone.agent..",
                        "io.tpmphone.server..", "io.tpmphone.tls..", "io.tpmphone.softphone..", "io.tpmphone.swtpm..",
                        "io.tpmphone.rig..", "io.tpmphone.cli..", "io.tpmphone.benchmarks..", "tss..")
                .because("attestation-protocol is the shared vocabulary (wire formats, verifiers) under every module")
                .check(MAIN);
    }

    @Test
    void attestedTls_hasNoTpm() {
        noClasses().that().resideInAPackage("io.tpmphone.tls..").should().dependOnClassesThat()
                .resideInAnyPackage("io.tpmphone.tpm..", "io.tpmphone.keystore..", "tss..")
                .because("attested TLS carries evidence and verifies passports; the agent's broker quotes for it")
                .check(MAIN);
    }

    @Test
    void nothing_dependsOnTheBenchmarks() {
        noClasses().that().resideOutsideOfPackage("io.tpmphone.benchmarks..").should().dependOnClassesThat()
                .resideInAPackage("io.tpmphone.benchmarks..")
                .because("the product does not ship its benchmarks: a benchmark's edit must not change a product")
                .check(MAIN);
    }

    @Test
    void onlyTheTpmModule_usesTssJava() {
        noClasses().that().resideOutsideOfPackage("io.tpmphone.tpm..").should().dependOnClassesThat()
                .resideInAPackage("tss..")
                .because("a hostile third-party API stays behind one adapter (STYLE §2)")
                .check(MAIN);
    }

    @Test
    void productCode_usesNeitherJmhNorJUnit() {
        noClasses().that().resideOutsideOfPackage("io.tpmphone.benchmarks..")
                .and().haveNameNotMatching("io\\.tpmphone\\.swtpm\\.(SwtpmExtension|WithSwtpm)(\\$.*)?")
                .should().dependOnClassesThat().resideInAnyPackage("org.openjdk.jmh..", "org.junit..")
                .because("JMH belongs to the benchmarks and JUnit to tests (swtpm-test's extension is the one"
                        + " deliberate, optional exception); neither is in the distribution")
                .check(MAIN);
    }

    @Test
    void productCode_doesNotUseJazzer() {
        noClasses().should().dependOnClassesThat().resideInAnyPackage("com.code_intelligence..")
                .because("Jazzer drives the fuzz tests (docs/fuzzing.md); it is a test dependency, never shipped")
                .check(MAIN);
    }

    @Test
    void libraryCode_printsNothing() {
        noClasses().that().resideOutsideOfPackages("io.tpmphone.cli..", "io.tpmphone.benchmarks..")
                .should(GeneralCodingRules.ACCESS_STANDARD_STREAMS)
                .because("command-line output belongs to cli (and the benchmarks' command); libraries log through"
                        + " SLF4J (STYLE §12)")
                .check(MAIN);
    }
}
