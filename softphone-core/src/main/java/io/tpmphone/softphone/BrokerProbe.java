package io.tpmphone.softphone;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.System.Logger.Level;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.Map;

/**
 * The smallest measured child: what the agent's launcher and broker need proven, with no dependency beyond this
 * module's own classes (so its class path is one jar). It reads its configuration file, takes the broker token from
 * stdin, connects to the broker named by {@code TPMPHONE_BROKER}, obtains one quote over a fresh binder, and runs until
 * the agent closes its stdin (or the agent dies and {@code unshare --kill-child} ends it). The agent's tests launch
 * it; the real softphone is {@link SoftphoneMain}.
 */
public final class BrokerProbe {
    private static final System.Logger LOG = System.getLogger("io.tpmphone.softphone.probe");

    private BrokerProbe() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2 || !args[0].equals("--config")) {
            LOG.log(Level.ERROR, "usage: BrokerProbe --config FILE");
            System.exit(2);
        }
        Path config = Path.of(args[1]);
        if (!Files.isReadable(config)) {
            LOG.log(Level.ERROR, "configuration " + config + " is not readable");
            System.exit(2);
        }
        String broker = System.getenv("TPMPHONE_BROKER");
        BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        String token = stdin.readLine();
        if (broker == null || token == null) {
            LOG.log(Level.ERROR, "no broker (TPMPHONE_BROKER) or no token on stdin: start me through the agent");
            System.exit(2);
        }
        try (AgentBroker client = AgentBroker.connect(Path.of(broker), token.trim())) {
            byte[] binder = new byte[32];
            new SecureRandom().nextBytes(binder);
            Map<String, String> quote = client.quote(binder);
            LOG.log(Level.INFO, "attested through the agent broker: AK " + quote.get("akId") + ", PCRs "
                    + quote.get("pcrs"));
            while (stdin.readLine() != null) {
                // the agent talks to us only by closing stdin
            }
        }
        LOG.log(Level.INFO, "agent closed our stdin: exiting");
    }
}
