package io.tpmphone.tpm.internal;

import io.tpmphone.tpm.TpmTransportException;
import java.util.Arrays;

/**
 * Bounds-checked reader over the parameter area of a TPM response frame (TPM 2.0 Part 1 §18.10): after the header
 * and the response handles, a sessions response carries {@code parameterSize} and then the parameters.
 */
public final class ResponseParameters {
    private static final int TPM_ST_SESSIONS = 0x8002;

    private final byte[] data;
    private int pos;
    private final int end;

    private ResponseParameters(byte[] data, int start, int end) {
        this.data = data;
        this.pos = start;
        this.end = end;
    }

    /** The parameters of {@code response}, which has {@code handleCount} response handles. */
    public static ResponseParameters of(byte[] response, int handleCount) throws TpmTransportException {
        if (response == null || response.length < TpmTransport.HEADER) {
            throw new TpmTransportException("no complete TPM response to read");
        }
        int tag = ((response[0] & 0xff) << 8) | (response[1] & 0xff);
        // The handles first: a frame too short for them left the reader positioned past its end, and rest() then
        // threw IllegalArgumentException instead of this (found by ResponseParametersFuzzTest).
        if (handleCount < 0 || handleCount > (response.length - TpmTransport.HEADER) / 4) {
            throw new TpmTransportException("malformed TPM response: " + response.length + " bytes cannot hold the"
                    + " header and " + handleCount + " response handle(s)");
        }
        ResponseParameters r = new ResponseParameters(response, TpmTransport.HEADER, response.length);
        r.pos += 4 * handleCount;
        if (tag == TPM_ST_SESSIONS) {
            int size = r.u32();
            if (size < 0 || size > response.length - r.pos) {
                throw new TpmTransportException("malformed TPM response: parameterSize " + size + " exceeds frame");
            }
            return new ResponseParameters(response, r.pos, r.pos + size);
        }
        return r;
    }

    public int u16() throws TpmTransportException {
        need(2);
        int v = ((data[pos] & 0xff) << 8) | (data[pos + 1] & 0xff);
        pos += 2;
        return v;
    }

    public int u32() throws TpmTransportException {
        need(4);
        int v = ((data[pos] & 0xff) << 24) | ((data[pos + 1] & 0xff) << 16) | ((data[pos + 2] & 0xff) << 8)
                | (data[pos + 3] & 0xff);
        pos += 4;
        return v;
    }

    /** The contents of a TPM2B (size-prefixed) field. */
    public byte[] tpm2b() throws TpmTransportException {
        int size = u16();
        return bytes(size);
    }

    public byte[] bytes(int n) throws TpmTransportException {
        need(n);
        byte[] v = Arrays.copyOfRange(data, pos, pos + n);
        pos += n;
        return v;
    }

    /** Everything left in the parameter area. */
    public byte[] rest() {
        byte[] v = Arrays.copyOfRange(data, pos, end);
        pos = end;
        return v;
    }

    private void need(int n) throws TpmTransportException {
        if (n < 0 || n > end - pos) {
            throw new TpmTransportException("malformed TPM response: needs " + n + " bytes at offset " + pos
                    + " but the parameter area ends at " + end);
        }
    }
}
