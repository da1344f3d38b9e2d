package io.tpmphone.softphone;

import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.tls.PeerAttestation;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.Optional;
import java.util.function.IntFunction;
import java.util.regex.Pattern;

/**
 * The integrity-level call policy: a default, and rules per destination (outgoing) or caller (incoming) pattern that
 * override it. Every line, {@code default} included, reads the same way: its level is a <em>floor</em>. A peer at that
 * level or above is accepted; a peer below it gets the line's action:
 * <ul>
 *   <li>{@code accept} or {@code reject}: refused (SIP 403 with a {@code Warning} naming the peer's level and the
 *       required one; an outgoing call ends before the INVITE). {@code L accept} says "accept L and better";
 *       {@code L reject} says "reject worse than L": the same rule;</li>
 *   <li>{@code restrict}: the call proceeds, marked restricted for the user.</li>
 * </ul>
 * The decision always reports the line's level as the required one. Levels are ordered FAILED &lt; UNATTESTED &lt;
 * IDENTIFIED &lt; MEASURED &lt; HARDENED. No peer is below {@code FAILED}, so a {@code FAILED} line admits everyone and
 * is written {@code FAILED accept}; {@code FAILED reject} and {@code FAILED restrict} are refused, since their action
 * could never apply (to refuse or restrict FAILED peers only, the floor is {@code UNATTESTED}). Immutable and
 * thread-safe.
 *
 * <p>Text form, one rule per line ({@code #} starts a comment):
 * <pre>
 * default MEASURED reject
 * in  sip:*@partner.example   UNATTESTED accept
 * out sip:ceo@example.org     HARDENED   reject
 * any sips:*@*.example.org    IDENTIFIED restrict
 * </pre>
 * Patterns are SIP URIs where {@code *} matches any run of characters other than {@code @}; the scheme must match
 * ({@code sip:} and {@code sips:} are different). The first matching rule wins; otherwise the default.
 *
 * <p><b>End to end.</b> A call whose media runs DTLS-SRTP has two levels: its first hop's (the TLS connection the SIP
 * came over: a proxy is {@code UNATTESTED}) and the far end's, established over the media association
 * ({@link #decideEndToEnd}). Any line may end with {@code end-to-end LEVEL}: the floor for the far end, while the
 * line's own level stays the floor for the hop. Without it the far end must meet the line's level too. A direct call
 * over one attested TLS hop is decided on that hop alone, as before.
 * <pre>
 * any sip:*@example.test UNATTESTED reject end-to-end MEASURED   # any proxy hop, but the far end MEASURED
 * </pre>
 */
public final class CallPolicy {
    /** What happens to a call. */
    public enum Action { ACCEPT, REJECT, RESTRICT }

    /** Which calls a rule is for. */
    public enum Direction { IN, OUT, ANY }

    /**
     * One rule: calls in {@code direction} whose peer URI matches are accepted at {@code minimumLevel} or above, and
     * get {@code below} under it. {@code below} is {@code REJECT} or {@code RESTRICT}; {@code ACCEPT} is taken as
     * {@code REJECT} ("accept only at the level or above").
     */
    public record Rule(Direction direction, String pattern, IntegrityLevel minimumLevel, Action below,
                       IntegrityLevel endToEndLevel) {
        public Rule {
            Objects.requireNonNull(direction, "direction");
            Objects.requireNonNull(pattern, "pattern");
            Objects.requireNonNull(minimumLevel, "minimumLevel");
            Objects.requireNonNull(endToEndLevel, "endToEndLevel");
            below = belowTheFloor(below);
        }

        /** A rule whose far end must meet the same level as its hop. */
        public Rule(Direction direction, String pattern, IntegrityLevel minimumLevel, Action below) {
            this(direction, pattern, minimumLevel, below, minimumLevel);
        }

        boolean matches(Direction d, String uri) {
            return (direction == Direction.ANY || direction == d) && compile(pattern).matcher(uri).matches();
        }
    }

    /** How a decided level was established. */
    public static final String ONE_HOP = "one hop";
    /** A far end's level established over the call's DTLS-SRTP association. */
    public static final String END_TO_END = "end-to-end DTLS";

    /**
     * The decision for one call, with the reason to show the user, audit, and put in a {@code Warning}; how the level
     * it decided on was established ({@link #ONE_HOP}: the connection the SIP came over; {@link #END_TO_END}: the
     * media association with the far end) and, end to end, the digest of both sides' evidence (hex, empty without
     * evidence), which both sides' audit records of one call share.
     */
    public record Decision(Action action, IntegrityLevel peerLevel, IntegrityLevel requiredLevel, String rule,
                           String reason, String established, String evidenceDigest) {
        public Decision {
            Objects.requireNonNull(action, "action");
            Objects.requireNonNull(peerLevel, "peerLevel");
            Objects.requireNonNull(requiredLevel, "requiredLevel");
            Objects.requireNonNull(rule, "rule");
            Objects.requireNonNull(reason, "reason");
            Objects.requireNonNull(established, "established");
            Objects.requireNonNull(evidenceDigest, "evidenceDigest");
        }

        /** A decision on the first hop's level. */
        public Decision(Action action, IntegrityLevel peerLevel, IntegrityLevel requiredLevel, String rule,
                        String reason) {
            this(action, peerLevel, requiredLevel, rule, reason, ONE_HOP, "");
        }

        /** Whether this decided on the far end's level, established end to end. */
        public boolean endToEnd() {
            return established.equals(END_TO_END);
        }

        /** The SIP {@code Warning} header value (RFC 3261 §20.43, code 399 miscellaneous) for a rejection. */
        public String warning(String agent) {
            return "399 " + agent + " \"" + reason.replace("\"", "'") + "\"";
        }
    }

    private final IntegrityLevel defaultLevel;
    private final Action defaultBelow;
    private final IntegrityLevel defaultEndToEnd;
    private final List<Rule> rules;

    /**
     * A policy whose default accepts peers at {@code defaultLevel} or above and gives {@code defaultBelow} to the
     * others ({@code ACCEPT} is taken as {@code REJECT}, as in a {@link Rule}).
     */
    public CallPolicy(IntegrityLevel defaultLevel, Action defaultBelow, List<Rule> rules) {
        this(defaultLevel, defaultBelow, defaultLevel, rules);
    }

    /** As above, with another floor for the far end of a call whose level is established end to end. */
    public CallPolicy(IntegrityLevel defaultLevel, Action defaultBelow, IntegrityLevel defaultEndToEnd,
                      List<Rule> rules) {
        this.defaultLevel = Objects.requireNonNull(defaultLevel, "defaultLevel");
        this.defaultBelow = belowTheFloor(defaultBelow);
        this.defaultEndToEnd = Objects.requireNonNull(defaultEndToEnd, "defaultEndToEnd");
        this.rules = List.copyOf(rules);
    }

    /** What a peer below a line's level gets: {@code accept} admits only at the level, so below it is refused. */
    private static Action belowTheFloor(Action action) {
        return Objects.requireNonNull(action, "action") == Action.ACCEPT ? Action.REJECT : action;
    }

    /** Every call accepted whatever the peer's level (still recorded). */
    public static CallPolicy acceptAll() {
        return new CallPolicy(IntegrityLevel.FAILED, Action.ACCEPT, List.of());
    }

    /** Decides a call in {@code direction} with the peer at {@code peerUri} whose connection attested {@code peer}. */
    public Decision decide(Direction direction, String peerUri, PeerAttestation peer) {
        return decide(direction, peerUri, peer, false, "");
    }

    /**
     * Decides a DTLS-SRTP call on its far end's level, established over the media association ({@code peer}), with
     * the digest of both sides' evidence (hex, empty when the far end sent none) for the audit record. The floor is
     * the matching line's {@code end-to-end} level (its own level when it names none). The reason says "far end".
     */
    public Decision decideEndToEnd(Direction direction, String peerUri, PeerAttestation farEnd, String evidenceDigest) {
        Objects.requireNonNull(evidenceDigest, "evidenceDigest");
        return decide(direction, peerUri, farEnd, true, evidenceDigest);
    }

    /**
     * Decides a call that has no end-to-end association (its media keyed by SDES): the first hop's level is all that
     * is known of the far end, so the hop must meet the matching line's {@code end-to-end} floor as well as its own
     * level. A direct call over an attested hop that meets both is accepted as before; one through an
     * {@code UNATTESTED} proxy hop under an end-to-end floor above that is not — otherwise any phone behind the proxy
     * could get past the floor by offering SDES instead of DTLS-SRTP.
     */
    public Decision decideWithoutEndToEnd(Direction direction, String peerUri, PeerAttestation peer) {
        Decision d = decide(direction, peerUri, peer, false, "");
        Decision far = decide(direction, peerUri, peer, true, "");
        if (d.action() != Action.ACCEPT || far.action() == Action.ACCEPT) {
            return d;
        }
        return new Decision(far.action(), peer.level(), far.requiredLevel(), far.rule(), "peer level "
                + peer.level() + " is below the required end-to-end " + far.requiredLevel() + " (" + far.rule()
                + "): the call has no end-to-end evidence (SDES), so its hop must meet the far end's floor; offer"
                + " DTLS-SRTP", ONE_HOP, "");
    }

    private Decision decide(Direction direction, String peerUri, PeerAttestation peer, boolean endToEnd,
                            String evidenceDigest) {
        Objects.requireNonNull(direction, "direction");
        Objects.requireNonNull(peerUri, "peerUri");
        Objects.requireNonNull(peer, "peer");
        String uri = peerUri.toLowerCase(Locale.ROOT);
        IntegrityLevel required = endToEnd ? defaultEndToEnd : defaultLevel;
        Action below = defaultBelow;
        String ruleName = "default";
        for (Rule r : rules) {
            if (r.matches(direction, uri)) {
                required = endToEnd ? r.endToEndLevel() : r.minimumLevel();
                below = r.below();
                ruleName = r.direction().name().toLowerCase(Locale.ROOT) + " " + r.pattern();
                break;
            }
        }
        String who = endToEnd ? "far end level " : "peer level ";
        String how = endToEnd ? END_TO_END : ONE_HOP;
        if (peer.level().atLeast(required)) {
            return new Decision(Action.ACCEPT, peer.level(), required, ruleName, who + peer.level()
                    + " meets the required " + required + " (" + ruleName + ")", how, evidenceDigest);
        }
        return new Decision(below, peer.level(), required, ruleName, who + peer.level()
                + " is below the required " + required + " (" + ruleName + "): " + peer.reason(), how,
                evidenceDigest);
    }

    /**
     * Parses the text form. Errors name the line: {@code line 3: unknown level "MEASURD"}.
     *
     * @throws IllegalArgumentException for a malformed policy
     */
    public static CallPolicy parse(String text) {
        Objects.requireNonNull(text, "text");
        return parse(List.of(text.split("\r?\n", -1)), i -> "line " + (i + 1));
    }

    /**
     * Parses {@code lines}, naming line {@code i} in errors as {@code name.apply(i)} (e.g. the configuration key it
     * came from: {@code policy.3: unknown level "MEASURD"}).
     *
     * @throws IllegalArgumentException for a malformed policy
     */
    public static CallPolicy parse(List<String> lines, IntFunction<String> name) {
        Objects.requireNonNull(lines, "lines");
        Objects.requireNonNull(name, "name");
        IntegrityLevel defaultLevel = null;
        Action defaultBelow = null;
        IntegrityLevel defaultEndToEnd = null;
        List<Rule> rules = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i);
            int hash = line.indexOf('#');
            String[] f = (hash >= 0 ? line.substring(0, hash) : line).trim().split("\\s+");
            if (f.length == 1 && f[0].isEmpty()) {
                continue;
            }
            String at = name.apply(i) + ": ";
            boolean isDefault = f[0].equalsIgnoreCase("default");
            IntegrityLevel endToEnd = null;
            int plain = isDefault ? 3 : 4;
            if (f.length == plain + 2 && f[plain].equalsIgnoreCase("end-to-end")) {
                endToEnd = level(f[plain + 1], at);
                f = java.util.Arrays.copyOf(f, plain);
            }
            if (isDefault) {
                if (f.length != 3) {
                    throw new IllegalArgumentException(at + "expected 'default LEVEL accept|reject|restrict"
                            + " [end-to-end LEVEL]'");
                }
                if (defaultLevel != null) {
                    throw new IllegalArgumentException(at + "a second 'default' line");
                }
                defaultLevel = level(f[1], at);
                defaultBelow = action(f[2], at);
                floorMeansSomething(defaultLevel, defaultBelow, at);
                defaultEndToEnd = endToEnd != null ? endToEnd : defaultLevel;
                continue;
            }
            if (f.length != 4) {
                throw new IllegalArgumentException(at + "expected 'in|out|any PATTERN LEVEL accept|reject|restrict"
                        + " [end-to-end LEVEL]'");
            }
            Direction d;
            try {
                d = Direction.valueOf(f[0].toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(at + "unknown direction \"" + f[0] + "\" (in, out, any)", e);
            }
            String pattern = f[1].toLowerCase(Locale.ROOT);
            if (!pattern.startsWith("sip:") && !pattern.startsWith("sips:")) {
                throw new IllegalArgumentException(at + "a pattern is a sip: or sips: URI, got \"" + f[1] + "\"");
            }
            IntegrityLevel level = level(f[2], at);
            Action action = action(f[3], at);
            floorMeansSomething(level, action, at);
            rules.add(new Rule(d, pattern, level, action, endToEnd != null ? endToEnd : level));
        }
        if (defaultLevel == null) {
            throw new IllegalArgumentException("the policy needs a 'default LEVEL accept|reject|restrict' line");
        }
        return new CallPolicy(defaultLevel, defaultBelow, defaultEndToEnd, rules);
    }

    /**
     * No peer is below FAILED, so "FAILED reject" and "FAILED restrict" would never reject or restrict anyone: they
     * admit every peer, which is rarely what the writer meant (usually: refuse or restrict the FAILED ones).
     */
    private static void floorMeansSomething(IntegrityLevel level, Action action, String at) {
        if (level == IntegrityLevel.FAILED && action != Action.ACCEPT) {
            String verb = action.name().toLowerCase(Locale.ROOT);
            throw new IllegalArgumentException(at + "no peer is below FAILED, so 'FAILED " + verb + "' would never "
                    + verb + " anyone (a level is the lowest one accepted): write 'FAILED accept' to accept every "
                    + "peer, or 'UNATTESTED " + verb + "' to " + verb + " only FAILED peers");
        }
    }

    private static IntegrityLevel level(String s, String at) {
        try {
            return IntegrityLevel.valueOf(s.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(at + "unknown level \"" + s + "\" (FAILED, UNATTESTED, IDENTIFIED,"
                    + " MEASURED, HARDENED)", e);
        }
    }

    private static Action action(String s, String at) {
        try {
            return Action.valueOf(s.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(at + "unknown action \"" + s + "\" (accept, reject, restrict)", e);
        }
    }

    private static Pattern compile(String glob) {
        StringBuilder re = new StringBuilder();
        for (String part : glob.split("\\*", -1)) {
            if (re.length() > 0) {
                re.append("[^@]*");
            }
            re.append(Pattern.quote(part));
        }
        return Pattern.compile(re.toString());
    }

    /** The rule for a peer URI, if one matches (for display). */
    public Optional<Rule> ruleFor(Direction d, String uri) {
        String u = uri.toLowerCase(Locale.ROOT);
        return rules.stream().filter(r -> r.matches(d, u)).findFirst();
    }
}
