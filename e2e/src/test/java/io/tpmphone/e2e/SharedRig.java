package io.tpmphone.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import io.tpmphone.rig.TwoHostRig;
import io.tpmphone.swtpm.SwtpmProcess;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolutionException;
import org.junit.jupiter.api.extension.ParameterResolver;

/**
 * One {@link TwoHostRig} for the end-to-end classes that only use the two hosts: they call with the hosts'
 * identities, keys and measured softphones, and read the audit log, but never tamper with a host, change the
 * policy, or stop an agent or a softphone. Started by the first class that asks for a {@code TwoHostRig} parameter
 * (of its {@code @BeforeAll}), kept in JUnit's root store and closed when the whole run ends; a rig start (two
 * swtpm, enrollment, two measured launches, appraisals) is about 7 s of each class otherwise. A class that changes
 * a host ({@code RelayAttackIT} tampers with bob's softphone) starts a rig of its own.
 *
 * <p>Each class gets the rig only while both measured softphones still run (a class that broke one fails here,
 * saying so, instead of the next class failing somewhere unrelated). What one class leaves in the shared state is
 * of no concern to another: calls have their own Call-IDs, the keystores refuse replays per offer, and the audit
 * log is read in full ({@link #audit}).
 */
final class SharedRig implements ParameterResolver {
    private static final ExtensionContext.Namespace NAMESPACE = ExtensionContext.Namespace.create(SharedRig.class);

    @Override
    public boolean supportsParameter(ParameterContext parameter, ExtensionContext context) {
        return parameter.getParameter().getType() == TwoHostRig.class;
    }

    @Override
    public Object resolveParameter(ParameterContext parameter, ExtensionContext context) {
        TwoHostRig rig = context.getRoot().getStore(NAMESPACE).getOrComputeIfAbsent(Started.class,
                k -> Started.start(), Started.class).rig();
        for (TwoHostRig.Host h : new TwoHostRig.Host[] {rig.alice(), rig.bob()}) {
            if (h.agent().child().filter(Process::isAlive).isEmpty()) {
                throw new ParameterResolutionException("the shared rig's " + h.name() + " softphone is no longer"
                        + " running (a class before " + context.getDisplayName() + " stopped or broke it); its log:\n"
                        + rig.childLog(h.name()));
            }
        }
        return rig;
    }

    /**
     * Every record of the rig's audit log, in order ({@code /v1/audit} pages hold at most 1000; the shared rig's log
     * holds what every class before did too).
     */
    static ArrayNode audit(TwoHostRig rig) throws Exception {
        ArrayNode all = JsonNodeFactory.instance.arrayNode();
        for (long from = 1; ; ) {
            JsonNode page = rig.client().get("/v1/audit?from=" + from + "&limit=1000", TwoHostRig.ADMIN_TOKEN)
                    .get("records");
            page.forEach(all::add);
            if (page.size() < 1000) {
                return all;
            }
            from = page.get(page.size() - 1).path("seq").asLong() + 1;
        }
    }

    /** The rig and its directory, closed and deleted when the run ends. */
    private record Started(TwoHostRig rig, Path dir) implements ExtensionContext.Store.CloseableResource {
        static Started start() {
            Path dir = null;
            try {
                dir = Files.createTempDirectory("tpmphone-e2e-rig-");
                return new Started(TwoHostRig.start(dir), dir);
            } catch (Exception e) {
                if (dir != null) {
                    SwtpmProcess.deleteDirectory(dir);
                }
                throw new ParameterResolutionException("the shared rig did not start: " + e, e);
            }
        }

        @Override
        public void close() {
            try {
                rig.close();
            } finally {
                SwtpmProcess.deleteDirectory(dir);
            }
        }
    }
}
