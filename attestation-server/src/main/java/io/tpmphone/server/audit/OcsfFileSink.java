package io.tpmphone.server.audit;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.attestation.OwnerOnlyFiles;
import java.io.IOException;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Objects;

/**
 * The SIEM export as a file sink: appends the audit log's records and checkpoints to {@code file} as the JSON lines
 * of {@link OcsfExport}, for a SIEM agent that tails files. It resumes where the file ends — the last record and
 * checkpoint lines in it are the cursor — so across restarts nothing is written twice or skipped; a line cut short by
 * a crash is removed first. Each {@link #flush} is fsynced. The file is created owner-only (0600): the audit log is
 * readable by operators, not by everyone. Thread-safe.
 */
public final class OcsfFileSink implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int TAIL_SCAN = 4 << 20;

    private final Path file;
    private final FileChannel channel;
    private final OcsfExport.Source source;
    private long after;
    private long checkpointsAfter;

    private OcsfFileSink(Path file, FileChannel channel, OcsfExport.Source source, long after,
                         long checkpointsAfter) {
        this.file = file;
        this.channel = channel;
        this.source = source;
        this.after = after;
        this.checkpointsAfter = checkpointsAfter;
    }

    /** Opens (creating 0600 if absent, in a new 0700 directory if that is missing) the sink file; finds its end. */
    public static OcsfFileSink open(Path file, OcsfExport.Source source) throws IOException {
        Objects.requireNonNull(source, "source");
        Path parent = file.toAbsolutePath().getParent();
        if (!java.nio.file.Files.isDirectory(parent)) {
            OwnerOnlyFiles.createPrivateDirectories(parent);
        }
        OwnerOnlyFiles.createPrivateFile(file);
        FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE);
        try {
            long end = completeLinesEnd(ch);
            if (end < ch.size()) {
                ch.truncate(end); // a line cut short by a crash: written again in full
            }
            long[] cursor = cursor(ch, end, file);
            ch.position(end);
            return new OcsfFileSink(file, ch, source, cursor[0], cursor[1]);
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
        }
    }

    /** The last record seq in the file. */
    public synchronized long exportedSeq() {
        return after;
    }

    /**
     * Appends everything the log has beyond the file's end (in pages of {@value OcsfExport#MAX_PAGE}), then fsyncs.
     *
     * @return the records appended
     */
    public synchronized long flush() throws AuditException, IOException {
        long written = 0;
        while (true) {
            StringWriter page = new StringWriter();
            OcsfExport.Result r = OcsfExport.write(source, after, checkpointsAfter, OcsfExport.MAX_PAGE, page);
            if (page.getBuffer().length() > 0) {
                ByteBuffer bytes = ByteBuffer.wrap(page.toString().getBytes(StandardCharsets.UTF_8));
                while (bytes.hasRemaining()) {
                    channel.write(bytes);
                }
            }
            after = r.nextAfter();
            checkpointsAfter = r.nextCheckpointsAfter();
            written += r.records();
            if (r.records() < OcsfExport.MAX_PAGE) {
                break;
            }
        }
        channel.force(false);
        return written;
    }

    @Override
    public synchronized void close() throws IOException {
        channel.close();
    }

    @Override
    public String toString() {
        return "OcsfFileSink{" + file + "}";
    }

    /** Where the last complete line ends (after its newline), or 0. */
    private static long completeLinesEnd(FileChannel ch) throws IOException {
        long size = ch.size();
        long pos = size;
        ByteBuffer one = ByteBuffer.allocate(8192);
        while (pos > 0) {
            int n = (int) Math.min(one.capacity(), pos);
            one.clear().limit(n);
            ch.read(one, pos - n);
            for (int i = n - 1; i >= 0; i--) {
                if (one.get(i) == '\n') {
                    return pos - n + i + 1;
                }
            }
            pos -= n;
        }
        return 0;
    }

    /** The last record seq and the last checkpoint number in the file's last lines. */
    private static long[] cursor(FileChannel ch, long end, Path file) throws IOException {
        long start = Math.max(0, end - TAIL_SCAN);
        ByteBuffer tail = ByteBuffer.allocate((int) (end - start));
        while (tail.hasRemaining()) {
            if (ch.read(tail, start + tail.position()) < 0) {
                break;
            }
        }
        String text = new String(tail.array(), 0, tail.position(), StandardCharsets.UTF_8);
        String[] lines = text.split("\n");
        long seq = -1;
        long checkpoint = -1;
        for (int i = lines.length - 1; i >= (start == 0 ? 0 : 1) && (seq < 0 || checkpoint < 0); i--) {
            if (lines[i].isBlank()) {
                continue;
            }
            JsonNode unmapped = JSON.readTree(lines[i]).path("unmapped");
            if (seq < 0 && unmapped.has("tpmphone_audit_record")) {
                seq = unmapped.get("tpmphone_audit_record").path("seq").asLong();
            }
            if (checkpoint < 0 && unmapped.has("tpmphone_audit_checkpoint")) {
                checkpoint = unmapped.get("tpmphone_audit_checkpoint").path("n").asLong();
            }
        }
        if (seq < 0 && end > TAIL_SCAN) {
            throw new IOException("no audit record in the last " + TAIL_SCAN + " bytes of " + file
                    + ": not an OCSF sink file of this server; give another file");
        }
        return new long[] {Math.max(seq, 0), checkpoint < 0 ? (seq < 0 ? 0 : -1) : checkpoint};
    }
}
