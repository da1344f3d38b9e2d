package io.tpmphone.tls;

import java.util.Locale;

/**
 * The SDP {@code a=setup} attribute (RFC 4145 §4, with the DTLS-SRTP roles of RFC 5763 §5 and RFC 8842 §5): who
 * starts the DTLS handshake. {@link #ACTIVE} is the DTLS client, {@link #PASSIVE} the server. An offer says
 * {@link #ACTPASS}; the answerer picks {@link #ACTIVE} (RFC 8842 §5.3), so the answerer's ClientHello can leave as
 * soon as it sent its answer.
 */
public enum DtlsSetup {
    ACTIVE, PASSIVE, ACTPASS, HOLDCONN;

    /** Parses an attribute value; anything else is refused. */
    public static DtlsSetup parse(String value) throws MalformedExtensionException {
        if (value == null) {
            throw new MalformedExtensionException("a=setup is missing");
        }
        return switch (value.trim().toLowerCase(Locale.ROOT)) {
            case "active" -> ACTIVE;
            case "passive" -> PASSIVE;
            case "actpass" -> ACTPASS;
            case "holdconn" -> HOLDCONN;
            default -> throw new MalformedExtensionException("a=setup is not active, passive, actpass or holdconn",
                    true);
        };
    }

    /** The attribute value. */
    public String sdp() {
        return name().toLowerCase(Locale.ROOT);
    }

    /**
     * The answerer's role for this offer: ACTIVE for {@code actpass} or {@code passive}, PASSIVE for {@code active}.
     *
     * @throws MalformedExtensionException for {@code holdconn} (no media now), which this phone does not offer
     */
    public DtlsSetup answer() throws MalformedExtensionException {
        return switch (this) {
            case ACTPASS, PASSIVE -> ACTIVE;
            case ACTIVE -> PASSIVE;
            case HOLDCONN -> throw new MalformedExtensionException("a=setup:holdconn: the peer wants no connection",
                    true);
        };
    }

    /**
     * The offerer's role, given the answer: the answer must be {@code active} or {@code passive}.
     */
    public static DtlsSetup offererRole(DtlsSetup answer) throws MalformedExtensionException {
        return switch (answer) {
            case ACTIVE -> PASSIVE;
            case PASSIVE -> ACTIVE;
            default -> throw new MalformedExtensionException("an answer's a=setup must be active or passive, not "
                    + answer.sdp(), true);
        };
    }

    /** Whether this role is the DTLS client. */
    public boolean isClient() {
        return this == ACTIVE;
    }
}
