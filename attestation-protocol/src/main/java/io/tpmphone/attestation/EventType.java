package io.tpmphone.attestation;

/**
 * Types of {@link MeasurementEvent}s in the tpmphone measurement log. The codes are in a private range
 * ({@code 0x8000_0000} and up) so they can never be mistaken for TCG PC Client event types
 * ({@code EV_*}, TCG PC Client Platform Firmware Profile §10.4.1), which are all below {@code 0x8000_0000}.
 * Thread-safe.
 */
public enum EventType {
    /**
     * The measurement PCR's value when the agent started the log. Not extended: the event's content digest is the
     * PCR value replay starts from (firmware or shim may have extended the PCR at boot, and it cannot be reset).
     * Always event 0 and only event 0.
     */
    BASELINE(0x8000_0000L),
    /** The Java launcher or {@code libjvm}; data = its path. */
    JVM(0x8000_0001L),
    /** A jar on the softphone's class path; data = the jar file name as on the class path. */
    CLASSPATH_JAR(0x8000_0002L),
    /** A configuration file; data = its name. */
    CONFIGURATION(0x8000_0003L),
    /** The exact argument vector; data = the arguments joined with NUL; content digest = SHA-256(data). */
    COMMAND_LINE(0x8000_0004L),
    /** The separator after which the measured process runs; data = child pid or launch id. */
    LAUNCH(0x8000_0005L),
    /** The measured process exited; data = exit status. */
    TERMINATED(0x8000_0006L),
    /** Isolation applied to the launch; data = description of the namespaces and read-only mounts. */
    ISOLATION(0x8000_0007L);

    private final long code;

    EventType(long code) {
        this.code = code;
    }

    /** The unsigned 32-bit event type code written on the wire, e.g. {@code 0x80000002} for a class-path jar. */
    public long code() {
        return code;
    }

    /**
     * The type with {@code code}.
     *
     * @throws MalformedStructureException if the code is not a tpmphone event type
     */
    public static EventType fromCode(long code) throws MalformedStructureException {
        for (EventType t : values()) {
            if (t.code == code) {
                return t;
            }
        }
        throw new MalformedStructureException("MeasurementEvent", "type", MalformedStructureException.NO_OFFSET,
                String.format("unknown event type 0x%08X; expected 0x80000000..0x80000007", code));
    }
}
