package io.tpmphone.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The soak's verdict: the second half's least-squares growth against a tolerance. */
@Timeout(value = 10, unit = TimeUnit.SECONDS)
class FlatnessTest {
    private static final double[] T = IntStream.range(0, 20).mapToDouble(i -> i * 30.0).toArray();

    @Test
    void aCurveThatWarmsUpThenStays_isFlat() {
        double[] heap = IntStream.range(0, 20).mapToDouble(i -> i < 5 ? 20 + 10 * i : 70 + (i % 2)).toArray();
        Flatness.Verdict v = Flatness.judge("heap", "MiB", T, heap, new Flatness.Tolerance(8, 0.1));
        assertTrue(v.flat(), v.toString());
        assertEquals(20, v.first(), v.toString());
        assertEquals(71, v.max(), v.toString());
    }

    @Test
    void aSteadyLeakInTheSecondHalf_isGrowing_withItsSlopePerHour() {
        double[] fds = IntStream.range(0, 20).mapToDouble(i -> 100 + i).toArray(); // one more fd every 30 s
        Flatness.Verdict v = Flatness.judge("fds", "fds", T, fds, new Flatness.Tolerance(8, 0.05));
        assertFalse(v.flat(), v.toString());
        assertEquals(120, v.slopePerHour(), 1e-9, v.toString());
        assertEquals(9, v.growth(), 1e-9, "nine intervals of the second half: " + v);
    }

    @Test
    void theToleranceIsTheLargerOfTheFloorAndTheShareOfTheMedian() {
        double[] big = IntStream.range(0, 20).mapToDouble(i -> 1000 + i).toArray(); // grows 9 over the second half
        assertTrue(Flatness.judge("big", "MiB", T, big, new Flatness.Tolerance(8, 0.01)).flat(), "1% of ~1010");
        assertFalse(Flatness.judge("big", "MiB", T, big, new Flatness.Tolerance(8, 0.001)).flat(), "floor 8 < 9");
    }

    @Test
    void oneLeakedTpmHandle_isGrowing_andShrinkingIsFlat() {
        double[] handles = IntStream.range(0, 20).mapToDouble(i -> i < 15 ? 0 : 1).toArray();
        assertFalse(Flatness.judge("tpm", "handles", T, handles, new Flatness.Tolerance(0.5, 0)).flat());
        double[] shrinking = IntStream.range(0, 20).mapToDouble(i -> 50 - i).toArray();
        assertTrue(Flatness.judge("heap", "MiB", T, shrinking, new Flatness.Tolerance(0, 0)).flat());
    }

    @Test
    void tooFewSamplesOrTimesThatDoNotAscend_areRejectedWithTheRule() {
        IllegalArgumentException few = assertThrows(IllegalArgumentException.class, () -> Flatness.judge("h", "u",
                new double[] {0, 1, 2}, new double[] {1, 1, 1}, new Flatness.Tolerance(1, 0)));
        assertTrue(few.getMessage().contains("at least 4 samples"), few.getMessage());
        IllegalArgumentException order = assertThrows(IllegalArgumentException.class, () -> Flatness.judge("h", "u",
                new double[] {0, 2, 1, 3}, new double[] {1, 1, 1, 1}, new Flatness.Tolerance(1, 0)));
        assertTrue(order.getMessage().contains("ascend"), order.getMessage());
    }
}
