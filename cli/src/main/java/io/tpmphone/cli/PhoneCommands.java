package io.tpmphone.cli;

import io.tpmphone.attestation.UntrustedText;
import com.fasterxml.jackson.databind.JsonNode;
import io.tpmphone.softphone.control.ControlClient;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * The user's side of a running softphone, through its control socket ({@code control.socket} in its configuration;
 * {@code STATE/control/control.sock} for an agent's default one): place a call, list calls, hang up.
 */
final class PhoneCommands {
    private PhoneCommands() {
    }

    private static final String SOCKET_HELP = "the softphone's control socket (control.socket in its configuration;"
            + " default ${DEFAULT-VALUE})";
    private static final String DEFAULT_SOCKET = "/var/lib/tpmphone-agent/control/control.sock";

    static ControlClient connect(Path socket) throws IOException, InterruptedException {
        try {
            return ControlClient.connect(socket, Duration.ofSeconds(2));
        } catch (IOException e) {
            throw new IOException("no softphone answers on " + socket + " (is the agent running, and is this its"
                    + " control.socket?): " + e.getMessage(), e);
        }
    }

    /** The levels a call's level slot may show: the softphone's own words, never the peer's. */
    private static final java.util.Set<String> LEVELS = java.util.Set.of("FAILED", "UNATTESTED", "IDENTIFIED",
            "MEASURED", "HARDENED");

    /**
     * One call for a person, its layout fixed so the far end's words cannot pass for ours: first what the softphone
     * decides — direction, state, and the level slot ({@code level MEASURED}, {@code level none} before the level is
     * known; only a level name, never free text) — then, each labelled and in double quotes, the fields that may carry
     * the far end's words (the call id, its URI, the attestation's description, a refusal reason quoting its SDP),
     * rendered by {@link UntrustedText} and {@link #quoted}: no escape sequence can redraw the line,
     * and no reason like {@code [MEASURED]} can stand where the level stands.
     */
    static String line(JsonNode c) {
        String level = c.path("level").asText("");
        StringBuilder s = new StringBuilder();
        s.append(word(c, "direction", java.util.Set.of("IN", "OUT"))).append("  ")
                .append(word(c, "state", STATES)).append("  level ")
                .append(level.isEmpty() ? "none" : LEVELS.contains(level) ? level : "unknown");
        s.append("  call ").append(quoted(c.path("callId").asText()));
        s.append("  peer ").append(quoted(c.path("peerUri").asText()));
        if (!c.path("display").asText("").isEmpty()) {
            s.append("  attestation ").append(quoted(c.path("display").asText()));
        }
        if (!c.path("reason").asText("").isEmpty()) {
            s.append("  reason ").append(quoted(c.path("reason").asText()));
        }
        return s.toString();
    }

    private static final java.util.Set<String> STATES = java.util.Arrays.stream(
            io.tpmphone.softphone.sip.Call.State.values()).map(Enum::name).collect(java.util.stream.Collectors.toSet());

    /** One of our own words ({@code allowed}), else "?". */
    private static String word(JsonNode c, String field, java.util.Set<String> allowed) {
        String w = c.path(field).asText("");
        return allowed.contains(w) ? w : "?";
    }

    /**
     * Someone's text in double quotes, rendered, its own quotes shown as {@code \x22} (as the rendering shows
     * controls): every {@code "} on the line is ours, so the text cannot close its quote and go on as our words.
     */
    static String quoted(String text) {
        return "\"" + UntrustedText.forTerminal(text).replace("\"", "\\x22") + "\"";
    }

    private static String safe(JsonNode c, String field) {
        return UntrustedText.forTerminal(c.path(field).asText());
    }

    @Command(name = "call", mixinStandardHelpOptions = true,
            description = {"Place a call from a running softphone and wait until it is established or refused.",
                    "Shows the peer's integrity level, claims and freshness, or why the call was refused."},
            footer = {"", "Example:", "  tpmphone call sips:bob@bob --next 192.0.2.7:5061 \\",
                    "      --control /var/lib/tpmphone-agent/control/control.sock"})
    static final class Call implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Parameters(paramLabel = "URI", description = "whom to call, e.g. sips:bob@bob")
        String target;
        @Option(names = "--next", required = true, paramLabel = "HOST:PORT",
                description = "where to send the call: the peer's (or a proxy's) TLS address")
        String next;
        @Option(names = "--control", paramLabel = "SOCKET", defaultValue = DEFAULT_SOCKET, description = SOCKET_HELP)
        Path control;
        @Option(names = "--timeout", defaultValue = "20", description = "seconds to wait (default ${DEFAULT-VALUE})")
        int timeout;
        @Option(names = "--json", description = "print the call as JSON")
        boolean json;

        @Override
        public Integer call() throws Exception {
            if (timeout < 1 || timeout > 120) {
                throw new IllegalArgumentException("--timeout must be 1..120 seconds");
            }
            try (ControlClient phone = connect(control)) {
                String id = phone.call(target, next);
                JsonNode c = phone.await(id, Duration.ofSeconds(timeout));
                PrintWriter out = spec.commandLine().getOut();
                out.println(json ? TpmCommand.JSON_LINE.writeValueAsString(c) : line(c));
                return c.path("state").asText().equals("ESTABLISHED") ? 0 : 1;
            }
        }
    }

    @Command(name = "phone", mixinStandardHelpOptions = true,
            description = {"The phone's screen on a terminal: incoming calls with the caller's integrity level,",
                    "its reasons and freshness, how it was established, the media protection, what the policy",
                    "decided, and your phrase (only the measured softphone can show it: a prompt without it is",
                    "not your phone's). Keys: a answer, d decline, c call (type sips:USER@HOST HOST:PORT),",
                    "h hold/resume, m mute, x hang up, q quit. The softphone draws the screen; this command",
                    "relays it. In colour on a terminal, plain when piped (or --list for one line per call)."},
            footer = {"", "Examples:",
                    "  tpmphone phone --control /var/lib/tpmphone-agent/control/control.sock",
                    "  tpmphone phone --list --control /var/lib/tpmphone-agent/control/control.sock",
                    "  tpmphone phone --answer 1f2e3d4c5b6a7980a1b2c3d4@alice",
                    "  tpmphone phone --hangup 1f2e3d4c5b6a7980a1b2c3d4@alice --json"})
    static final class Phone implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Option(names = "--control", paramLabel = "SOCKET", defaultValue = DEFAULT_SOCKET, description = SOCKET_HELP)
        Path control;
        @Option(names = "--hangup", paramLabel = "CALL-ID", description = "end this call")
        String hangup;
        @Option(names = "--answer", paramLabel = "CALL-ID", description = "answer this ringing call")
        String answer;
        @Option(names = "--decline", paramLabel = "CALL-ID", description = "decline this ringing call (603)")
        String decline;
        @Option(names = "--list", description = "one line per call instead of the screen (the default when"
                + " output is not a terminal)")
        boolean list;
        @Option(names = "--screen", description = "the screen even when output is not a terminal (plain frames)")
        boolean screen;
        @Option(names = "--json", description = "print the status and calls as JSON")
        boolean json;

        @Override
        public Integer call() throws Exception {
            boolean terminal = System.console() != null;
            boolean actions = hangup != null || answer != null || decline != null;
            if (!list && !json && !actions && (screen || terminal)) {
                return new PhoneScreen(control, terminal, spec.commandLine().getOut()).run();
            }
            try (ControlClient phone = connect(control)) {
                PrintWriter out = spec.commandLine().getOut();
                if (hangup != null) {
                    phone.hangUp(hangup);
                }
                if (answer != null) {
                    phone.answer(answer);
                }
                if (decline != null) {
                    phone.decline(decline);
                }
                JsonNode status = phone.request(ControlClient.op("status"));
                JsonNode calls = phone.calls();
                if (json) {
                    com.fasterxml.jackson.databind.node.ObjectNode all = TpmCommand.JSON.createObjectNode();
                    all.set("uri", status.path("uri"));
                    all.set("tlsPort", status.path("tlsPort"));
                    all.set("calls", calls);
                    out.println(TpmCommand.JSON_LINE.writeValueAsString(all));
                } else {
                    out.println(safe(status, "uri") + " on TLS port " + status.path("tlsPort").asInt()
                            + ", " + calls.size() + " call(s)");
                    calls.forEach(c -> out.println("  " + line(c)));
                }
                return 0;
            }
        }
    }
}
