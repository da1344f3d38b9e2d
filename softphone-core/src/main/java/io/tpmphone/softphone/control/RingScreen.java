package io.tpmphone.softphone.control;

import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.attestation.UntrustedText;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.sip.Call;
import io.tpmphone.softphone.sip.Sdp;
import io.tpmphone.softphone.sip.SipPhone;
import io.tpmphone.tls.PeerAttestation;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Clock;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * The phone's screen, drawn by the measured softphone itself and relayed unchanged to the person's terminal by
 * {@code tpmphone phone}: who calls, the caller's integrity level with its reasons and freshness (or "no attestation",
 * or "attestation failed"), how it was established, the media protection and what the policy decided; then the person
 * answers ({@code a}) or declines ({@code d}, 603). It also shows the phrase the person chose at set-up, which only the
 * measured softphone can unseal: a look-alike prompt drawn by another program cannot show it. The same screen places
 * calls ({@code c}), shows the far end's level during a call, holds ({@code h}), mutes ({@code m}) and hangs up
 * ({@code x}).
 *
 * <p>Every string that comes from the far end (URI, reasons, claims) is rendered with
 * {@link UntrustedText#forTerminal} on its own labelled line, after the label, never in the level's place or colour:
 * a peer cannot draw a level, move the cursor or change colours. As the {@link SipPhone.AnswerDecision} it holds each
 * ringing call until the person decides; with {@code autoAnswer} (an explicit configuration choice) it answers at once.
 * Thread-safe.
 */
public final class RingScreen implements SipPhone.AnswerDecision {
    /** Longest dial-prompt input, in characters. */
    static final int MAX_DIAL = 300;
    private static final DateTimeFormatter CLOCK = DateTimeFormatter.ofPattern("HH:mm:ss").withZone(ZoneOffset.UTC);
    private static final String RESET = "\u001b[0m";

    private final SipPhone phone;
    private final Optional<String> phrase;
    private final boolean autoAnswer;
    private final Clock clock;
    private final Map<String, CompletableFuture<Answer>> ringing = new ConcurrentHashMap<>();
    private final Map<String, AutoCloseable> ringers = new ConcurrentHashMap<>();
    private volatile Ringing sound;
    private final List<Runnable> changed = new CopyOnWriteArrayList<>();
    /** The dial prompt's input while the person types a call target; null when no prompt is open. */
    private StringBuilder dial;
    private String notice = "";

    /**
     * @param phrase     the person's phrase, unsealed by the keystore for this measured softphone (empty: none set)
     * @param autoAnswer answer every call the policy accepts without asking (configured explicitly)
     */
    public RingScreen(SipPhone phone, Optional<String> phrase, boolean autoAnswer, Clock clock) {
        this.phone = Objects.requireNonNull(phone, "phone");
        this.phrase = Objects.requireNonNull(phrase, "phrase");
        this.autoAnswer = autoAnswer;
        this.clock = Objects.requireNonNull(clock, "clock");
    }

    /** Makes the ringing sound while a call rings: started for it, closed when the person decides or it ends. */
    @FunctionalInterface
    public interface Ringing {
        AutoCloseable start(Call call) throws java.io.IOException;
    }

    /** Rings with {@code ringing} (the sound server's speaker) while calls ring. */
    public RingScreen withRinging(Ringing ringing) {
        this.sound = Objects.requireNonNull(ringing, "ringing");
        return this;
    }

    private void startRinging(Call call) {
        Ringing r = sound;
        if (r == null) {
            return;
        }
        try {
            ringers.put(call.callId(), r.start(call));
        } catch (java.io.IOException | RuntimeException e) {
            notice = "no ringing sound: " + UntrustedText.forTerminal(e.getMessage(), 200);
        }
    }

    private void stopRinging(String callId) {
        AutoCloseable r = ringers.remove(callId);
        if (r != null) {
            try {
                r.close();
            } catch (Exception e) {
                notice = "the ringing sound did not stop cleanly: " + UntrustedText.forTerminal(e.toString(), 200);
            }
        }
    }

    /** {@code listener} runs whenever what the screen shows changed (a call rang, ended, a key was pressed). */
    public void onChange(Runnable listener) {
        changed.add(listener);
    }

    /** Stops telling {@code listener}. */
    public void removeOnChange(Runnable listener) {
        changed.remove(listener);
    }

    /** Tells the screens that something changed (a call's state moved). */
    public void changed() {
        changed.forEach(Runnable::run);
    }

    @Override
    public CompletionStage<Answer> ring(Call call) {
        if (autoAnswer) {
            return CompletableFuture.completedFuture(Answer.ANSWER);
        }
        CompletableFuture<Answer> f = new CompletableFuture<>();
        ringing.put(call.callId(), f);
        startRinging(call);
        call.settled().whenComplete((c, e) -> {
            ringing.remove(call.callId());
            stopRinging(call.callId());
            changed();
        });
        changed();
        return f;
    }

    /** Answers the ringing call {@code callId}; whether it was ringing here. */
    public boolean answer(String callId) {
        return decide(callId, Answer.ANSWER);
    }

    /** Declines (603) the ringing call {@code callId}; whether it was ringing here. */
    public boolean decline(String callId) {
        return decide(callId, Answer.DECLINE);
    }

    private boolean decide(String callId, Answer answer) {
        CompletableFuture<Answer> f = ringing.remove(callId);
        stopRinging(callId);
        boolean done = f != null && f.complete(answer);
        changed();
        return done;
    }

    /** The call that rings longest (the one {@code a} and {@code d} decide), if any. */
    Optional<Call> firstRinging() {
        return phone.calls().stream().filter(c -> ringing.containsKey(c.callId())
                && c.state() == Call.State.RINGING).findFirst();
    }

    /** The newest established call (the one {@code h}, {@code m} and {@code x} act on), if any. */
    Optional<Call> current() {
        List<Call> up = phone.calls().stream().filter(c -> c.state() == Call.State.ESTABLISHED).toList();
        return up.isEmpty() ? Optional.empty() : Optional.of(up.get(up.size() - 1));
    }

    /**
     * One key the person pressed (a code point from the terminal). Returns false when the person asked to leave the
     * screen ({@code q}).
     */
    public synchronized boolean key(int c) {
        try {
            if (dial != null) {
                typeDial(c);
                return true;
            }
            switch (c) {
                case 'a' -> firstRinging().ifPresentOrElse(call -> answer(call.callId()),
                        () -> notice = "no call is ringing");
                case 'd' -> firstRinging().ifPresentOrElse(call -> decline(call.callId()),
                        () -> notice = "no call is ringing");
                case 'h' -> current().ifPresentOrElse(call -> {
                    try {
                        phone.hold(call, !call.held());
                        notice = call.held() ? "resuming" : "putting the call on hold";
                    } catch (io.tpmphone.softphone.sip.PhoneException e) {
                        notice = "hold failed: " + UntrustedText.forTerminal(e.getMessage(), 200);
                    }
                }, () -> notice = "no call to hold");
                case 'm' -> current().flatMap(Call::audio).ifPresentOrElse(a -> {
                    a.mute(!a.muted());
                    notice = a.muted() ? "microphone muted" : "microphone on";
                }, () -> notice = "no call to mute");
                case 'x' -> current().ifPresentOrElse(call -> {
                    try {
                        phone.hangUp(call);
                        notice = "hung up";
                    } catch (io.tpmphone.softphone.sip.PhoneException e) {
                        notice = "hanging up failed: " + UntrustedText.forTerminal(e.getMessage(), 200);
                    }
                }, () -> notice = "no call to hang up");
                case 'c' -> {
                    dial = new StringBuilder();
                    notice = "";
                }
                case 'q' -> {
                    return false;
                }
                default -> {
                    // other keys do nothing
                }
            }
            return true;
        } finally {
            changed();
        }
    }

    private void typeDial(int c) {
        if (c == '\r' || c == '\n') {
            String input = dial.toString().trim();
            dial = null;
            place(input);
        } else if (c == 0x1b) {
            dial = null;
            notice = "call cancelled";
        } else if (c == 0x7f || c == 0x08) {
            if (dial.length() > 0) {
                dial.setLength(dial.length() - 1);
            }
        } else if (c >= 0x21 && c < 0x7f || c == ' ') {
            if (dial.length() < MAX_DIAL) {
                dial.append((char) c);
            }
        }
    }

    /** Places a call typed as {@code URI HOST:PORT} (the target and its first hop). */
    private void place(String input) {
        String[] f = input.split("\\s+");
        if (f.length != 2 || !(f[0].startsWith("sips:") || f[0].startsWith("sip:")) || f[1].lastIndexOf(':') <= 0) {
            notice = "type: sips:USER@HOST HOST:PORT (the target and its first hop)";
            return;
        }
        try {
            int colon = f[1].lastIndexOf(':');
            int port = Integer.parseInt(f[1].substring(colon + 1));
            if (port < 1 || port > 65_535) {
                throw new NumberFormatException("port " + port);
            }
            Call call = phone.call(f[0], new InetSocketAddress(InetAddress.getByName(f[1].substring(0, colon)),
                    port));
            call.settled().whenComplete((c, e) -> changed());
            notice = "calling " + UntrustedText.forTerminal(f[0], 200);
        } catch (java.net.UnknownHostException | NumberFormatException e) {
            notice = "cannot call: " + UntrustedText.forTerminal(e.getMessage(), 200);
        }
    }

    /**
     * The screen as text for a terminal {@code width} columns wide and {@code height} rows high, lines separated by
     * CRLF; with {@code ansi}, the level in colour (else plain text, for a pipe).
     */
    public synchronized String render(int width, int height, boolean ansi) {
        int w = Math.max(40, Math.min(width, 300));
        int h = Math.max(10, Math.min(height, 200));
        List<String> lines = new ArrayList<>();
        lines.add(bold(" Phone " + phone.uri(), ansi) + "   " + CLOCK.format(clock.instant()) + " UTC   (tpmphone)");
        String phraseLine = " Your phrase: " + phrase.map(p -> "«" + UntrustedText.forTerminal(p, 80) + "»")
                .orElse("(none set: tpmphone agent phrase)") + "  — only this measured phone can show it";
        if (columns(phraseLine) <= w) {
            lines.add(phraseLine);
        } else {
            // a narrow window: the phrase whole, wrapped, never cut (a cut phrase could be a look-alike's)
            lines.add(" Your phrase (only this phone shows it):");
            String shown = phrase.map(p -> "«" + UntrustedText.forTerminal(p, 80) + "»").orElse("(none set)");
            int[] cps = shown.codePoints().toArray();
            StringBuilder row = new StringBuilder();
            int used = 0;
            for (int cp : cps) {
                int cols = columns(cp);
                if (used + cols > w - 3) {
                    lines.add("   " + row);
                    row.setLength(0);
                    used = 0;
                }
                row.appendCodePoint(cp);
                used += cols;
            }
            if (row.length() > 0) {
                lines.add("   " + row);
            }
        }
        lines.add(rule(w));
        Optional<Call> ring = firstRinging();
        if (ring.isPresent()) {
            lines.add(bold(" INCOMING CALL", ansi));
            lines.addAll(details(ring.get(), ansi));
            lines.add("   " + bold("[a] answer", ansi) + "   " + bold("[d] decline", ansi)
                    + (ringing.size() > 1 ? "   (" + (ringing.size() - 1) + " more ringing)" : ""));
        } else {
            Optional<Call> now = current();
            if (now.isPresent()) {
                lines.add(bold(" IN CALL" + (now.get().held() ? " (on hold)" : "")
                        + (now.get().audio().map(a -> a.muted()).orElse(false) ? " (muted)" : ""), ansi));
                lines.addAll(details(now.get(), ansi));
            } else {
                lines.add(" No call.");
            }
        }
        lines.add(rule(w));
        lines.add(" CALLS");
        List<Call> calls = new ArrayList<>(phone.calls());
        calls.sort(Comparator.comparing((Call c) -> c.state() == Call.State.ENDED
                || c.state() == Call.State.REFUSED));
        int room = Math.max(1, h - lines.size() - 4);
        for (Call c : calls.subList(0, Math.min(room, calls.size()))) {
            // the level slot first and always there (ours alone fill it, and a narrow window never cuts it), the
            // far end's words after it and quoted: a reason like "[ MEASURED ]" cannot sit where the level sits
            lines.add("   " + c.peer().map(p -> levelTag(p.level(), ansi)).orElse("[ no level ]") + " "
                    + c.state() + " " + c.direction() + " " + quoted(c.peerUri(), 60)
                    + (c.held() ? " [held]" : "")
                    + (c.state() == Call.State.ENDED || c.state() == Call.State.REFUSED
                    ? "  why " + quoted(c.reason(), 60) : "")
                    // what the far end's SIP said when it ended the call (its 403's Warning, its CANCEL's Reason),
                    // even after our side had ended it: its words, quoted
                    + c.farEndSaid().filter(s -> !c.reason().contains(s)).map(s -> "  far end said "
                            + quoted(s, 60)).orElse(""));
        }
        lines.add(rule(w));
        lines.add(dial != null ? " Call: " + dial + "_   (sips:USER@HOST HOST:PORT, Enter to call, Esc to cancel)"
                : " [c] call  [h] hold  [m] mute  [x] hang up  [q] quit" + (notice.isEmpty() ? "" : "   " + notice));
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < Math.min(lines.size(), h); i++) {
            if (ansi) {
                // each row at its own position, the rest of it cleared: no line, however it measures, makes a row
                out.append("\u001b[").append(i + 1).append(";1H").append(fit(lines.get(i), w)).append("\u001b[K");
            } else {
                out.append(fit(lines.get(i), w)).append("\r\n");
            }
        }
        return out.toString();
    }

    /** What the person needs to decide: caller, level with reasons and freshness, how, media, policy. */
    private List<String> details(Call call, boolean ansi) {
        List<String> d = new ArrayList<>();
        d.add("   From:        " + UntrustedText.forTerminal(call.peerUri(), 120) + "   (the caller's own text)");
        Optional<PeerAttestation> peer = call.peer();
        if (peer.isEmpty()) {
            d.add("   Level:       not verified yet");
            return d;
        }
        PeerAttestation p = peer.get();
        d.add("   Level:       " + levelTag(p.level(), ansi) + "  " + switch (p.level()) {
            case UNATTESTED -> "no attestation";
            case FAILED -> "attestation failed";
            default -> "attested host " + UntrustedText.forTerminal(p.host().orElse("(unverified)"), 80);
        });
        d.add("   Why:         " + UntrustedText.forTerminal(p.summary(), 160));
        if (!p.summary().contains(p.reason()) && !p.reason().isBlank()) {
            d.add("                " + UntrustedText.forTerminal(p.reason(), 160));
        }
        d.add("   Freshness:   " + p.freshness().map(f -> "appraised by the attestation server " + f.toSeconds()
                + " s before it was verified")
                .orElse("no appraisal") + ", verified " + CLOCK.format(p.verifiedAt()) + " UTC");
        d.add("   Established: " + (p.level() == IntegrityLevel.UNATTESTED ? "without attestation"
                : "attested TLS, one hop (the first hop's evidence, in the TLS handshake)"));
        d.add("   Media:       " + media(call));
        call.decision().ifPresent(dec -> d.add("   Policy:      " + dec.action() + " (this call needs "
                + dec.requiredLevel() + " or above" + (dec.action() == CallPolicy.Action.RESTRICT
                ? "; accepted as RESTRICTED" : "") + ")"));
        return d;
    }

    private static String media(Call call) {
        Optional<Sdp> sdp = call.remoteSdp();
        String protection = sdp.map(s -> s.dtls().isPresent() ? "SRTP keyed by DTLS-SRTP"
                : s.cryptos().isEmpty() ? "none offered" : "SRTP, SDES " + s.cryptos().get(0).suite())
                .orElse("not negotiated yet");
        int pt = call.payloadType();
        String codec = Sdp.isDynamic(pt) ? "Opus" : pt == 8 ? "PCMA" : "PCMU";
        return protection + ", " + codec;
    }

    /** The far end's text in double quotes, rendered; its own quotes as {@code \x22}, so every {@code "} is ours. */
    static String quoted(String text, int max) {
        return "\"" + UntrustedText.forTerminal(text, max).replace("\"", "\\x22") + "\"";
    }

    private static String levelTag(IntegrityLevel level, boolean ansi) {
        String tag = "[ " + level + " ]";
        if (!ansi) {
            return tag;
        }
        String colour = switch (level) {
            case HARDENED, MEASURED -> "\u001b[1;30;42m";
            case IDENTIFIED, UNATTESTED -> "\u001b[1;30;43m";
            case FAILED -> "\u001b[1;37;41m";
        };
        return colour + tag + RESET;
    }

    private static String bold(String s, boolean ansi) {
        return ansi ? "\u001b[1m" + s + RESET : s;
    }

    private static String rule(int width) {
        return " " + "─".repeat(Math.max(0, width - 2));
    }

    /** The columns {@code text} takes on a terminal (escape sequences of ours take none): see {@link #columns(int)}. */
    static int columns(String text) {
        int n = 0;
        for (int i = 0; i < text.length(); ) {
            int c = text.codePointAt(i);
            if (c == 0x1b) {
                int end = text.indexOf('m', i);
                i = end < 0 ? text.length() : end + 1;
                continue;
            }
            n += columns(c);
            i += Character.charCount(c);
        }
        return n;
    }

    /**
     * The columns a terminal gives code point {@code c}: none for combining marks and zero-width characters, two for
     * East Asian Wide and Fullwidth ones (CJK, Hangul, fullwidth forms, emoji), one otherwise.
     */
    static int columns(int c) {
        int type = Character.getType(c);
        if (type == Character.NON_SPACING_MARK || type == Character.ENCLOSING_MARK || type == Character.FORMAT
                || type == Character.CONTROL || (c >= 0x1160 && c <= 0x11ff) || c == 0x200b) {
            return 0;
        }
        boolean wide = (c >= 0x1100 && c <= 0x115f) || c == 0x2329 || c == 0x232a
                || (c >= 0x231a && c <= 0x231b) || (c >= 0x23e9 && c <= 0x23f3) || (c >= 0x25fd && c <= 0x25fe)
                || (c >= 0x2614 && c <= 0x2615) || (c >= 0x2648 && c <= 0x2653) || (c >= 0x26aa && c <= 0x26ab)
                || (c >= 0x26bd && c <= 0x26be) || (c >= 0x26c4 && c <= 0x26c5) || c == 0x26ce || c == 0x26d4
                || c == 0x26ea || (c >= 0x26f2 && c <= 0x26f5) || c == 0x26fa || c == 0x26fd || c == 0x2705
                || (c >= 0x270a && c <= 0x270b) || c == 0x2728 || c == 0x274c || c == 0x274e
                || (c >= 0x2753 && c <= 0x2755) || c == 0x2757 || (c >= 0x2795 && c <= 0x2797) || c == 0x27b0
                || c == 0x27bf || (c >= 0x2b1b && c <= 0x2b1c) || c == 0x2b50 || c == 0x2b55
                || (c >= 0x2e80 && c <= 0x303e) || (c >= 0x3041 && c <= 0x33ff) || (c >= 0x3400 && c <= 0x4dbf)
                || (c >= 0x4e00 && c <= 0x9fff) || (c >= 0xa000 && c <= 0xa4cf) || (c >= 0xa960 && c <= 0xa97f)
                || (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) || (c >= 0xfe10 && c <= 0xfe19)
                || (c >= 0xfe30 && c <= 0xfe6f) || (c >= 0xff00 && c <= 0xff60) || (c >= 0xffe0 && c <= 0xffe6)
                || (c >= 0x16fe0 && c <= 0x18cff) || (c >= 0x1b000 && c <= 0x1b2ff) || (c >= 0x1f004 && c <= 0x1f004)
                || c == 0x1f0cf || c == 0x1f18e || (c >= 0x1f191 && c <= 0x1f19a) || (c >= 0x1f200 && c <= 0x1f251)
                || (c >= 0x1f300 && c <= 0x1f64f) || (c >= 0x1f680 && c <= 0x1f6ff) || (c >= 0x1f7e0 && c <= 0x1f7eb)
                || (c >= 0x1f90c && c <= 0x1f9ff) || (c >= 0x1fa70 && c <= 0x1faff) || (c >= 0x20000 && c <= 0x3fffd);
        return wide ? 2 : 1;
    }

    /** {@code line} cut to {@code width} terminal columns ({@link #columns(int)}; escape sequences of ours take none). */
    static String fit(String line, int width) {
        StringBuilder out = new StringBuilder();
        int visible = 0;
        boolean cut = false;
        for (int i = 0; i < line.length(); ) {
            int c = line.codePointAt(i);
            if (c == 0x1b) { // one of our SGR sequences: copy through 'm'
                int end = line.indexOf('m', i);
                end = end < 0 ? line.length() - 1 : end;
                out.append(line, i, end + 1);
                i = end + 1;
                continue;
            }
            int cols = columns(c);
            if (cut || visible + cols > width) {
                cut = true;
                i += Character.charCount(c);
                continue;
            }
            out.appendCodePoint(c);
            visible += cols;
            i += Character.charCount(c);
        }
        if (cut && line.contains("\u001b")) {
            out.append(RESET);
        }
        return out.toString();
    }
}
