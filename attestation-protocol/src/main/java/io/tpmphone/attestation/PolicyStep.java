package io.tpmphone.attestation;

import java.util.Arrays;
import java.util.HexFormat;
import java.util.Objects;

/**
 * One step of a TPM policy session, as data, so that the software digest ({@link KeystorePolicy}) and the session a
 * TPM client runs come from one list and cannot drift apart. Immutable.
 */
public sealed interface PolicyStep {
    /** {@code TPM2_PolicyPCR} over {@code selection} (the TPM uses its current values; software, given ones). */
    record Pcr(PcrSelection selection) implements PolicyStep {
        public Pcr {
            Objects.requireNonNull(selection, "selection");
        }
    }

    /**
     * {@code TPM2_PolicyCounterTimer(operandB, offset, operation)} against {@code TPMS_TIME_INFO} (TPM 2.0 Part 3
     * §23.10).
     */
    record CounterTimer(byte[] operandB, int offset, int operation) implements PolicyStep {
        public CounterTimer {
            operandB = Objects.requireNonNull(operandB, "operandB").clone();
            if (offset < 0 || offset > 0xFFFF || operation < 0 || operation > 0xFFFF) {
                throw new IllegalArgumentException("offset and operation are UINT16");
            }
        }

        @Override
        public byte[] operandB() {
            return operandB.clone();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof CounterTimer c && Arrays.equals(operandB, c.operandB) && offset == c.offset
                    && operation == c.operation;
        }

        @Override
        public int hashCode() {
            return Objects.hash(Arrays.hashCode(operandB), offset, operation);
        }

        @Override
        public String toString() {
            return "CounterTimer[" + HexFormat.of().formatHex(operandB) + ", offset " + offset + ", operation "
                    + operation + "]";
        }
    }
}
