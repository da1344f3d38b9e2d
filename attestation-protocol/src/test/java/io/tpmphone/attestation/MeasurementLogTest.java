package io.tpmphone.attestation;

import static io.tpmphone.attestation.Measurements.BASELINE;
import static io.tpmphone.attestation.Measurements.PCR;
import static io.tpmphone.attestation.Measurements.approvedLaunch;
import static io.tpmphone.attestation.Measurements.log;
import static io.tpmphone.attestation.Measurements.sha256;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class MeasurementLogTest {
    private static final byte[] DIGEST = sha256("softphone-core.jar bytes");

    @Test
    void eventEncoding_hasTheDocumentedLayout() throws Exception {
        MeasurementEvent e = MeasurementEvent.of(5, 14, EventType.CLASSPATH_JAR, DIGEST, "a.jar");
        ByteBuffer b = ByteBuffer.wrap(e.encode());
        assertEquals(0x54504556, b.getInt());
        assertEquals(5, b.getInt());
        assertEquals(14, b.getInt());
        assertEquals(0x80000002, b.getInt());
        assertEquals(0x000B, b.getShort());
        byte[] digest = new byte[32];
        b.get(digest);
        assertArrayEquals(DIGEST, digest);
        assertEquals(5, b.getInt());
        byte[] data = new byte[5];
        b.get(data);
        assertEquals("a.jar", new String(data, StandardCharsets.UTF_8));
        assertFalse(b.hasRemaining());
        assertEquals(e, MeasurementEvent.parse(e.encode()));
    }

    @Test
    void extendDigest_bindsLabelSequencePcrTypeAndData() throws Exception {
        MeasurementEvent e = MeasurementEvent.of(5, 14, EventType.CLASSPATH_JAR, DIGEST, "a.jar");
        ByteArrayOutputStream m = new ByteArrayOutputStream();
        m.write("tpmphone-event-v1".getBytes(StandardCharsets.US_ASCII));
        m.write(ByteBuffer.allocate(16).putInt(5).putInt(14).putInt(0x80000002).putInt(5).array());
        m.write("a.jar".getBytes(StandardCharsets.UTF_8));
        m.write(DIGEST);
        assertArrayEquals(HashAlgorithm.SHA256.digest(m.toByteArray()), e.extendDigest());
        assertNotEquals(Measurements.hex(e.extendDigest()),
                Measurements.hex(MeasurementEvent.of(6, 14, EventType.CLASSPATH_JAR, DIGEST, "a.jar").extendDigest()));
        assertNotEquals(Measurements.hex(e.extendDigest()),
                Measurements.hex(MeasurementEvent.of(5, 14, EventType.CONFIGURATION, DIGEST, "a.jar").extendDigest()));
        assertNotEquals(Measurements.hex(e.extendDigest()),
                Measurements.hex(MeasurementEvent.of(5, 14, EventType.CLASSPATH_JAR, DIGEST, "b.jar").extendDigest()));
    }

    @Test
    void encodeThenParse_roundTripsEveryEvent() throws Exception {
        MeasurementLog log = log(approvedLaunch(true));
        byte[] encoded = log.encode();
        MeasurementLog parsed = MeasurementLog.parse(encoded);
        assertEquals(log, parsed);
        assertArrayEquals(encoded, parsed.encode());
        assertEquals(EventType.BASELINE, parsed.event(0).type());
        assertArrayEquals(BASELINE, parsed.event(0).contentDigest());
        assertEquals(0, MeasurementLog.parse(new byte[0]).size());
    }

    @Test
    void appendedEvents_encodeAsTheConcatenationOfEvents() throws Exception {
        MeasurementLog log = log(approvedLaunch(false));
        MeasurementLog longer = log.append(EventType.TERMINATED, sha256("exit 0"), "exit 0");
        MeasurementEvent last = longer.event(longer.size() - 1);
        assertEquals(log.size(), last.sequence());
        assertEquals(PCR, last.pcrIndex());
        byte[] joined = concat(log.encode(), last.encode());
        assertArrayEquals(joined, longer.encode());
        assertEquals(longer, MeasurementLog.parse(joined));
    }

    @Test
    void replay_equalsAHandComputedChainFromTheBaseline() {
        MeasurementLog log = MeasurementLog.builder(PCR, BASELINE)
                .append(EventType.JVM, sha256("java"), "/bin/java")
                .append(EventType.LAUNCH, sha256("launch"), "pid 1")
                .build();
        byte[] v = BASELINE.clone();
        v = HashAlgorithm.SHA256.digest(v, log.event(1).extendDigest());
        v = HashAlgorithm.SHA256.digest(v, log.event(2).extendDigest());
        ReplayResult r = log.replay(PCR);
        assertArrayEquals(v, r.value());
        assertArrayEquals(BASELINE, r.initialValue());
        assertEquals(2, r.extendedEvents());
        assertTrue(r.baselinePresent());
        ReplayResult other = log.replay(3);
        assertArrayEquals(new byte[32], other.value());
        assertFalse(other.baselinePresent());
    }

    @Test
    void badMagic_isRejectedNamingEventAndField() {
        MeasurementLog log = log(approvedLaunch(false));
        byte[] bad = log.encode();
        bad[log.event(0).encode().length] ^= 1;
        MalformedStructureException e = assertThrows(MalformedStructureException.class,
                () -> MeasurementLog.parse(bad));
        assertEquals("events[1].magic", e.field());
    }

    private static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] p : parts) {
            out.writeBytes(p);
        }
        return out.toByteArray();
    }

    static List<byte[]> split(MeasurementLog log) {
        List<byte[]> out = new ArrayList<>();
        for (MeasurementEvent e : log.events()) {
            out.add(e.encode());
        }
        return out;
    }

    static byte[] eventBytes(int sequence, long type, int hashAlg, long dataLength, byte[] data) {
        return ByteBuffer.allocate(4 + 4 + 4 + 4 + 2 + 32 + 4 + data.length).putInt(0x54504556).putInt(sequence)
                .putInt(14).putInt((int) type).putShort((short) hashAlg).put(DIGEST).putInt((int) dataLength)
                .put(data).array();
    }

    @Test
    void unknownEventType_isRejectedNamingTheEvent() {
        byte[] bad = concat(log(List.of()).encode(), eventBytes(1, 0x80000008L, 0x000B, 0, new byte[0]));
        MalformedStructureException e = assertThrows(MalformedStructureException.class,
                () -> MeasurementLog.parse(bad));
        assertEquals("events[1].type", e.field());
        assertTrue(e.getMessage().contains("0x80000008"), e.getMessage());
        byte[] tcg = eventBytes(0, 0x0000000DL, 0x000B, 0, new byte[0]);
        assertEquals("events[0].type",
                assertThrows(MalformedStructureException.class, () -> MeasurementLog.parse(tcg)).field());
    }

    @Test
    void sha1Event_isRejected() {
        byte[] bad = eventBytes(0, 0x80000000L, 0x0004, 0, new byte[0]);
        MalformedStructureException e = assertThrows(MalformedStructureException.class,
                () -> MeasurementLog.parse(bad));
        assertEquals("events[0].hashAlg", e.field());
        assertTrue(e.getMessage().contains("sha256"), e.getMessage());
    }

    @Test
    void truncatedLog_isRejectedAtEveryCut() {
        MeasurementLog log = log(approvedLaunch(false));
        int last = log.size() - 1;
        byte[] good = log.encode();
        int lastStart = good.length - log.event(last).encode().length;
        for (int cut = lastStart + 1; cut < good.length; cut++) {
            byte[] bad = Arrays.copyOf(good, cut);
            MalformedStructureException e = assertThrows(MalformedStructureException.class,
                    () -> MeasurementLog.parse(bad), "cut at " + cut);
            assertTrue(e.field().startsWith("events[" + last + "]"), e.field());
        }
    }

    @Test
    void trailingBytes_areRejected() {
        byte[] good = log(approvedLaunch(false)).encode();
        byte[] bad = Arrays.copyOf(good, good.length + 3);
        MalformedStructureException e = assertThrows(MalformedStructureException.class,
                () -> MeasurementLog.parse(bad));
        assertTrue(e.getMessage().contains("3 trailing byte(s)"), e.getMessage());
        assertThrows(MalformedStructureException.class,
                () -> MeasurementEvent.parse(Arrays.copyOf(log(List.of()).encode(), 63)));
    }

    @Test
    void dataLongerThan4096Bytes_isRejected() {
        byte[] data = new byte[4097];
        Arrays.fill(data, (byte) 'a');
        byte[] bad = eventBytes(0, 0x80000000L, 0x000B, data.length, data);
        MalformedStructureException e = assertThrows(MalformedStructureException.class,
                () -> MeasurementLog.parse(bad));
        assertEquals("events[0].dataLength", e.field());
        assertThrows(IllegalArgumentException.class,
                () -> MeasurementEvent.of(0, 14, EventType.JVM, DIGEST, data));
        byte[] ok = Arrays.copyOf(data, 4096);
        assertEquals(4096, MeasurementEvent.of(0, 14, EventType.JVM, DIGEST, ok).data().length);
    }

    @Test
    void hugeDeclaredDataLength_isRejectedWithoutAllocating() {
        byte[] bad = eventBytes(0, 0x80000000L, 0x000B, 0xFFFFFFFFL, new byte[0]);
        assertEquals("events[0].dataLength",
                assertThrows(MalformedStructureException.class, () -> MeasurementLog.parse(bad)).field());
    }

    @Test
    void invalidUtf8Data_isRejected() {
        byte[] bad = eventBytes(0, 0x80000000L, 0x000B, 2, new byte[] {(byte) 0xC3, (byte) 0x28});
        assertEquals("events[0].data",
                assertThrows(MalformedStructureException.class, () -> MeasurementLog.parse(bad)).field());
    }

    @Test
    void pcrIndexAbove23_isRejected() {
        byte[] bad = eventBytes(0, 0x80000000L, 0x000B, 0, new byte[0]);
        ByteBuffer.wrap(bad).putInt(8, 24);
        assertEquals("events[0].pcrIndex",
                assertThrows(MalformedStructureException.class, () -> MeasurementLog.parse(bad)).field());
    }

    @Test
    void moreThan10000Events_areRejected() throws Exception {
        byte[] one = eventBytes(0, 0x80000001L, 0x000B, 0, new byte[0]);
        byte[] max = new byte[one.length * 10_000];
        for (int i = 0; i < 10_000; i++) {
            System.arraycopy(one, 0, max, i * one.length, one.length);
        }
        assertEquals(10_000, MeasurementLog.parse(max).size());
        byte[] tooMany = concat(max, one);
        MalformedStructureException e = assertThrows(MalformedStructureException.class,
                () -> MeasurementLog.parse(tooMany));
        assertEquals("events[10000]", e.field());
        List<MeasurementEvent> events = new ArrayList<>(MeasurementLog.parse(max).events());
        events.add(events.get(0));
        assertThrows(IllegalArgumentException.class, () -> MeasurementLog.of(events));
    }

    @Test
    void builder_refusesASecondBaselineAndBadEvents() {
        MeasurementLog.Builder b = MeasurementLog.builder(PCR, BASELINE);
        assertThrows(IllegalArgumentException.class, () -> b.append(EventType.BASELINE, DIGEST, ""));
        assertThrows(IllegalArgumentException.class, () -> b.append(EventType.JVM, new byte[20], ""));
        assertThrows(IllegalArgumentException.class, () -> MeasurementEvent.of(-1, 14, EventType.JVM, DIGEST, ""));
        assertThrows(IllegalArgumentException.class, () -> MeasurementEvent.of(0, 24, EventType.JVM, DIGEST, ""));
        assertThrows(IllegalStateException.class,
                () -> MeasurementLog.empty().append(EventType.JVM, DIGEST, "x"));
    }

    @Test
    void eventArrays_areCopiedInAndOut() {
        byte[] digest = DIGEST.clone();
        MeasurementEvent e = MeasurementEvent.of(1, 14, EventType.JVM, digest, "x");
        digest[0] ^= 1;
        assertArrayEquals(DIGEST, e.contentDigest());
        e.contentDigest()[0] ^= 1;
        e.data()[0] = 'y';
        assertArrayEquals(DIGEST, e.contentDigest());
        assertEquals("x", e.dataAsString());
    }
}
