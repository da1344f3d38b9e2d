package io.tpmphone.cli.internal;

import io.tpmphone.attestation.PcrValues;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

/**
 * Files in the formats tpm2-tools 5.x reads, so that {@code tpm2_checkquote} can check what we write.
 *
 * <p>{@code tpm2_quote -o} (default "serialized" format) writes its in-memory structures as they are on a
 * little-endian 64-bit host: a {@code TPML_PCR_SELECTION} C struct (u32 count, 16 selections of 8 bytes: u16 hash,
 * u8 sizeofSelect, 4 select bytes, 1 padding byte), a u32 number of {@code TPML_DIGEST} structs, then each
 * {@code TPML_DIGEST} (u32 count, 8 {@code TPM2B_DIGEST} slots of u16 size + 64 bytes) holding up to 8 PCR values in
 * ascending PCR order. Found by decoding tpm2_quote's output on this project's machine (tpm2-tools 5.4): 668 bytes
 * for three SHA-256 PCRs.
 */
public final class Tpm2ToolsFiles {
    private static final int MAX_SELECTIONS = 16;
    private static final int SELECTION_STRUCT = 8;
    private static final int DIGESTS_PER_LIST = 8;
    private static final int DIGEST_SLOT = 2 + 64;
    private static final int DIGEST_LIST = 4 + DIGESTS_PER_LIST * DIGEST_SLOT;

    private Tpm2ToolsFiles() {
    }

    /** The {@code pcrs.bin} bytes {@code tpm2_quote -o} would write for these values. */
    public static byte[] serializedPcrs(PcrValues values) {
        List<byte[]> digests = values.values();
        int lists = (digests.size() + DIGESTS_PER_LIST - 1) / DIGESTS_PER_LIST;
        ByteBuffer b = ByteBuffer.allocate(4 + MAX_SELECTIONS * SELECTION_STRUCT + 4 + lists * DIGEST_LIST)
                .order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(1);
        b.putShort((short) values.selection().bank().tpmId());
        byte[] bitmap = values.selection().selectBitmap();
        b.put((byte) bitmap.length);
        byte[] select = new byte[4];
        System.arraycopy(bitmap, 0, select, 0, Math.min(4, bitmap.length));
        b.put(select);
        b.put((byte) 0);
        b.position(4 + MAX_SELECTIONS * SELECTION_STRUCT);
        b.putInt(lists);
        for (int list = 0; list < lists; list++) {
            int start = b.position();
            int n = Math.min(DIGESTS_PER_LIST, digests.size() - list * DIGESTS_PER_LIST);
            b.putInt(n);
            for (int i = 0; i < n; i++) {
                byte[] d = digests.get(list * DIGESTS_PER_LIST + i);
                b.position(start + 4 + i * DIGEST_SLOT);
                b.putShort((short) d.length);
                b.put(d);
            }
            b.position(start + DIGEST_LIST);
        }
        return b.array();
    }
}
