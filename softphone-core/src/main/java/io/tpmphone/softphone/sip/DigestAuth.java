package io.tpmphone.softphone.sip;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.Optional;

/**
 * HTTP digest authentication as SIP uses it (RFC 3261 §22.4 with RFC 8760): MD5 and SHA-256, their {@code -sess}
 * variants, {@code qop=auth} or no qop. Pure computation; {@link SipPhone} turns challenges into headers.
 *
 * <p>Choosing among several challenges of one realm (RFC 8760 §2.4): the registrar lists them in its order of
 * preference and the client takes the topmost one whose algorithm it supports; {@link #choose} does that.
 */
public final class DigestAuth {
    /** The algorithms we answer, by their token in the challenge. */
    public enum Algorithm {
        MD5("MD5", "MD5", false),
        MD5_SESS("MD5-sess", "MD5", true),
        SHA_256("SHA-256", "SHA-256", false),
        SHA_256_SESS("SHA-256-sess", "SHA-256", true);

        private final String token;
        private final String jca;
        private final boolean session;

        Algorithm(String token, String jca, boolean session) {
            this.token = token;
            this.jca = jca;
            this.session = session;
        }

        public String token() {
            return token;
        }

        /** The algorithm named by a challenge; a challenge without one means MD5 (RFC 2617 §3.2.1). */
        public static Optional<Algorithm> of(String token) {
            if (token == null || token.isEmpty()) {
                return Optional.of(MD5);
            }
            for (Algorithm a : values()) {
                if (a.token.equalsIgnoreCase(token)) {
                    return Optional.of(a);
                }
            }
            return Optional.empty();
        }
    }

    /** One {@code WWW-Authenticate} or {@code Proxy-Authenticate} challenge, as the parser gave its parameters. */
    public record Challenge(String realm, String nonce, String algorithm, String qop, String opaque) {
        public Challenge {
            Objects.requireNonNull(realm, "realm");
            Objects.requireNonNull(nonce, "nonce");
        }

        /** {@code auth} if the challenge offers it (possibly among others), empty if it names no qop. */
        Optional<String> chosenQop() throws UnsupportedChallengeException {
            if (qop == null || qop.isBlank()) {
                return Optional.empty();
            }
            for (String q : qop.split(",")) {
                if (q.trim().equalsIgnoreCase("auth")) {
                    return Optional.of("auth");
                }
            }
            throw new UnsupportedChallengeException("the challenge offers qop=" + qop + " but not auth");
        }
    }

    /** A challenge we cannot answer (unknown algorithm, only auth-int): the reason says which. */
    public static final class UnsupportedChallengeException extends Exception {
        private static final long serialVersionUID = 1L;

        public UnsupportedChallengeException(String message) {
            super(message);
        }
    }

    /** The parameters of our answer, for the {@code Authorization} or {@code Proxy-Authorization} header. */
    public record Answer(String username, String realm, String nonce, String uri, String response,
                         Algorithm algorithm, Optional<String> qop, Optional<String> cnonce, Optional<String> nc,
                         Optional<String> opaque) {
    }

    private DigestAuth() {
    }

    /** The topmost challenge we support, or why none is usable. */
    public static Challenge choose(List<Challenge> challenges) throws UnsupportedChallengeException {
        if (challenges.isEmpty()) {
            throw new UnsupportedChallengeException("the response carries no digest challenge");
        }
        StringBuilder seen = new StringBuilder();
        for (Challenge c : challenges) {
            if (Algorithm.of(c.algorithm()).isPresent()) {
                return c;
            }
            seen.append(seen.length() == 0 ? "" : ", ").append(c.algorithm());
        }
        throw new UnsupportedChallengeException("no supported digest algorithm among " + seen
                + " (we answer MD5 and SHA-256, with or without -sess)");
    }

    /**
     * Answers {@code challenge} for {@code method} on {@code uri}. {@code cnonce} is fresh per answer (ignored without
     * qop); {@code nonceCount} counts answers to this nonce, from 1. The password is only read, never kept.
     */
    public static Answer answer(Challenge challenge, String method, String uri, String username, char[] password,
                                String cnonce, int nonceCount) throws UnsupportedChallengeException {
        Algorithm alg = Algorithm.of(challenge.algorithm()).orElseThrow(() ->
                new UnsupportedChallengeException("unsupported digest algorithm " + challenge.algorithm()));
        Optional<String> qop = challenge.chosenQop();
        String nc = String.format(Locale.ROOT, "%08x", nonceCount);
        MessageDigest md = digest(alg);
        byte[] secret = credentials(username, challenge.realm(), password);
        String ha1;
        try {
            ha1 = hex(md.digest(secret));
        } finally {
            Arrays.fill(secret, (byte) 0);
        }
        if (alg.session) {
            ha1 = hex(md.digest((ha1 + ":" + challenge.nonce() + ":" + cnonce).getBytes(StandardCharsets.UTF_8)));
        }
        String ha2 = hex(md.digest((method + ":" + uri).getBytes(StandardCharsets.UTF_8)));
        String response = qop.isPresent()
                ? hex(md.digest((ha1 + ":" + challenge.nonce() + ":" + nc + ":" + cnonce + ":" + qop.get() + ":"
                        + ha2).getBytes(StandardCharsets.UTF_8)))
                : hex(md.digest((ha1 + ":" + challenge.nonce() + ":" + ha2).getBytes(StandardCharsets.UTF_8)));
        boolean withCnonce = qop.isPresent() || alg.session;
        return new Answer(username, challenge.realm(), challenge.nonce(), uri, response, alg, qop,
                withCnonce ? Optional.of(cnonce) : Optional.empty(), qop.isPresent() ? Optional.of(nc)
                : Optional.empty(), Optional.ofNullable(challenge.opaque()));
    }

    /** {@code username:realm:password} in UTF-8, in a buffer the caller wipes. */
    private static byte[] credentials(String username, String realm, char[] password) {
        CharBuffer chars = CharBuffer.allocate(username.length() + realm.length() + password.length + 2);
        chars.put(username).put(':').put(realm).put(':').put(password).flip();
        ByteBuffer bytes = StandardCharsets.UTF_8.encode(chars);
        byte[] out = new byte[bytes.remaining()];
        bytes.get(out);
        Arrays.fill(chars.array(), '\0');
        if (bytes.hasArray()) {
            Arrays.fill(bytes.array(), (byte) 0);
        }
        return out;
    }

    private static MessageDigest digest(Algorithm alg) {
        try {
            return MessageDigest.getInstance(alg.jca);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(alg.jca + " is part of every Java platform", e);
        }
    }

    private static String hex(byte[] b) {
        return HexFormat.of().formatHex(b);
    }
}
