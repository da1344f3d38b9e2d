package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.EventType;
import io.tpmphone.attestation.MeasurementEvent;
import io.tpmphone.softphone.media.NativeLibraries;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmUri;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * libjitsi's native audio libraries in the measured code tree: staged under {@code native/}, measured like the jars
 * (one CLASSPATH_JAR event each, named {@code native/FILE}, with the file's SHA-256, as the release manifest lists
 * them), and loaded by the isolated, unprivileged child from {@code java.library.path=native} — where libjitsi's own
 * loader fails on Java 17 (PITFALLS).
 */
@WithSwtpm(ekCertificate = true, perMethod = true)
class NativeLibrariesLaunchIT {

    @Test
    @Timeout(120)
    void theIsolatedChild_loadsTheMeasuredNativeLibraries_fromItsCodeTree(SwtpmProcess swtpm, @TempDir Path dir)
            throws Exception {
        List<Path> natives = NativeLibraries.extract(dir.resolve("extracted"));
        // libjnpulseaudio's JNI_OnLoad looks up libjitsi's callback classes: the probe runs with libjitsi's jar
        Path libjitsi = Path.of(org.jitsi.service.libjitsi.LibJitsi.class.getProtectionDomain().getCodeSource()
                .getLocation().toURI());
        LaunchSpec spec = new LaunchSpec(Path.of(System.getProperty("java.home")),
                List.of(Fixture.jarOf(dir, NativeLibraryProbe.class), libjitsi), Fixture.config(dir, "a=1\n"),
                NativeLibraryProbe.class.getName(), List.of("-Djava.library.path=" + LaunchSpec.NATIVE_DIRECTORY),
                NativeLibraries.NAMES, true).withNativeLibraries(natives);
        try (TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
             MeasurementLogStore store = MeasurementLogStore.open(dir.resolve("log"), tpm, Fixture.PCR)) {
            MeasuredLauncher.Launched child = new MeasuredLauncher(store, dir.resolve("launch")).launch(spec,
                    Map.of());
            try {
                String log = Await.until("the probe to try the libraries", Duration.ofSeconds(30),
                        () -> Files.readString(dir.resolve("launch/child.log")), l -> l.contains("probe ready"));
                for (String name : NativeLibraries.NAMES) {
                    assertTrue(log.contains("loaded " + name + "\n") && !log.contains("not loaded " + name),
                            "the isolated child loads " + name + " from its code tree; child.log: " + log);
                }
                for (Path lib : natives) {
                    String name = "native/" + lib.getFileName();
                    List<MeasurementEvent> events = store.log().events().stream()
                            .filter(e -> e.type() == EventType.CLASSPATH_JAR && e.dataAsString().equals(name))
                            .toList();
                    assertEquals(1, events.size(), () -> "one measurement of " + name + ": " + store.log().events());
                    assertArrayEquals(MeasurementLogStore.sha256(lib), events.get(0).contentDigest(),
                            () -> "the measurement of " + name + " is its SHA-256: " + events.get(0));
                    assertArrayEquals(Files.readAllBytes(lib), Files.readAllBytes(child.codeDirectory().resolve(name)),
                            "the staged copy of " + name + " is the library");
                }
                @SuppressWarnings("unchecked")
                Map<String, String> jars = (Map<String, String>) ReleaseManifest.of("r", spec).get("jars");
                for (Path lib : natives) {
                    assertTrue(jars.containsKey("native/" + lib.getFileName()),
                            "the release manifest approves native/" + lib.getFileName() + ": " + jars.keySet());
                }
            } finally {
                child.process().destroyForcibly();
                child.terminated().get(15, TimeUnit.SECONDS);
            }
        }
    }
}
