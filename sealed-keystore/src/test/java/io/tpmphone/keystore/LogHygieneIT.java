package io.tpmphone.keystore;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.classic.spi.IThrowableProxy;
import ch.qos.logback.core.read.ListAppender;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import io.tpmphone.tpm.AuthorityKey;
import io.tpmphone.tpm.PersistentHandle;
import io.tpmphone.tpm.PolicyApproval;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmObjectBlob;
import io.tpmphone.tpm.TpmUri;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/** A full key cycle logged at TRACE: no key, salt, root secret, PIN share or PIN appears in logs or exceptions. */
@WithSwtpm
class LogHygieneIT {
    @TempDir
    Path dir;

    @Test
    void fullKeyCycle_logsAndExceptions_neverContainSecretBytes(SwtpmProcess swtpm) throws Exception {
        Logger root = (Logger) LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
        Level before = root.getLevel();
        ListAppender<ILoggingEvent> captured = new ListAppender<>();
        captured.start();
        // Everything at TRACE goes to our list only: the console (and CI's output) stays at WARN.
        List<ch.qos.logback.core.Appender<ILoggingEvent>> console = new ArrayList<>();
        root.iteratorForAppenders().forEachRemaining(console::add);
        console.forEach(root::detachAppender);
        root.addAppender(captured);
        root.setLevel(Level.TRACE);
        List<byte[]> secrets = new ArrayList<>();
        List<String> texts = new ArrayList<>();
        String pinText = "739151";
        try (TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()))) {
            AuthorityKey authority = new AuthorityKey();
            SecretBytes pin = SecretBytes.copyOf(pinText.getBytes(StandardCharsets.UTF_8));
            secrets.add(pinText.getBytes(StandardCharsets.UTF_8));
            try (SealedKeystore ks = SealedKeystore.create(tpm, dir,
                    Protection.authorized(Protection.DEFAULT_PCRS, authority.publicArea()), Optional.of(pin))) {
                PolicyApproval approval = authority.approve(ks.currentStatePolicy().value(), Protection.policyRef());
                Unlock unlock = Unlock.approved(approval).withPin(pin);
                for (int i = 0; i < 5; i++) {
                    SrtpKeys k = ks.srtpKey("call-" + i, SrtpSuite.AES_CM_128_HMAC_SHA1_80, unlock);
                    secrets.add(k.masterKey().reveal());
                    secrets.add(k.masterSalt().reveal());
                    texts.add(k.toString());
                    texts.add(k.masterKey().toString());
                    SrtpKeys copy = k;
                    texts.add(assertThrows(KeystoreException.class,
                            () -> ks.checkOffered(copy.masterKey(), copy.masterSalt())).toString());
                    k.destroy();
                }
                // The root secret and PIN share themselves, read the way only a test may.
                TpmObjectBlob rootBlob = TpmObjectBlob.fromBytes(Files.readAllBytes(dir.resolve("root.sealed")));
                secrets.add(tpm.unsealWithAuthorizedPolicy(PersistentHandle.SRK_ECC, rootBlob,
                        Protection.DEFAULT_PCRS, approval).reveal());
                TpmObjectBlob pinBlob = TpmObjectBlob.fromBytes(Files.readAllBytes(dir.resolve("pin.sealed")));
                secrets.add(tpm.unsealWithPassword(PersistentHandle.SRK_ECC, pinBlob, pin).reveal());

                texts.add(assertThrows(KeystoreException.class, () -> ks.srtpKey("c",
                        SrtpSuite.AES_CM_128_HMAC_SHA1_80, Unlock.approved(approval).withPin(
                                SecretBytes.copyOf("000000".getBytes(StandardCharsets.UTF_8))))).toString());
                tpm.pcrExtend(14, HashAlgorithm.SHA256.digest(new byte[] {1}));
                KeystoreException refused = assertThrows(KeystoreException.class,
                        () -> ks.srtpKey("c", SrtpSuite.AES_CM_128_HMAC_SHA1_80, unlock));
                texts.add(refused.toString());
                for (Throwable t = refused.getCause(); t != null; t = t.getCause()) {
                    texts.add(t.toString());
                }
                ks.resetLockout();
            }
        } finally {
            root.setLevel(before);
            root.detachAppender(captured);
            console.forEach(root::addAppender);
        }
        for (ILoggingEvent e : captured.list) {
            texts.add(e.getFormattedMessage());
            for (IThrowableProxy t = e.getThrowableProxy(); t != null; t = t.getCause()) {
                texts.add(t.getClassName() + ": " + t.getMessage());
            }
        }
        assertTrue(captured.list.size() > 5, "the cycle was logged: " + captured.list.size() + " events");
        assertTrue(captured.list.stream().anyMatch(e -> e.getLevel() == Level.WARN), () -> "refusals are logged at "
                + "WARN; the levels logged: " + captured.list.stream().map(e -> e.getLevel()).distinct().toList());
        assertEquals(5 * 2 + 3, secrets.size());
        String all = String.join("\n", texts);
        String allLower = all.toLowerCase(Locale.ROOT);
        for (byte[] secret : secrets) {
            for (String form : forms(secret)) {
                assertFalse(all.contains(form) || allLower.contains(form.toLowerCase(Locale.ROOT)),
                        "a secret appeared in logs or exception text");
            }
        }
    }

    /** Hex and Base64 of the whole secret, and hex of every 8-byte window. */
    private static List<String> forms(byte[] secret) {
        List<String> forms = new ArrayList<>();
        forms.add(HexFormat.of().formatHex(secret));
        forms.add(Base64.getEncoder().encodeToString(secret));
        forms.add(Base64.getEncoder().withoutPadding().encodeToString(secret));
        forms.add(Base64.getUrlEncoder().withoutPadding().encodeToString(secret));
        forms.add(new String(secret, StandardCharsets.ISO_8859_1));
        for (int i = 0; i + 8 <= secret.length; i++) {
            forms.add(HexFormat.of().formatHex(Arrays.copyOfRange(secret, i, i + 8)));
        }
        return forms;
    }
}
