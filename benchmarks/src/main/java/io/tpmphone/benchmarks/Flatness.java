package io.tpmphone.benchmarks;

import java.util.Arrays;
import java.util.Objects;

/**
 * Whether a sampled curve (heap, threads, file descriptors, TPM handles over a soak) is flat: the least-squares slope
 * of its <em>second half</em> (the first half holds the warm-up: class loading, JIT, caches filling) times that half's
 * length is the growth a leak would show, and the curve is flat when that growth is at most a tolerance. Shrinking is
 * flat. The tolerance is the larger of an absolute floor and a fraction of the curve's median, so noise in a large
 * heap is not a leak and one extra thread in a small process is not either. Pure logic; immutable values.
 */
public final class Flatness {
    private Flatness() {
    }

    /**
     * How much growth a series may show over the second half.
     *
     * @param absolute the floor, in the series' unit
     * @param relative the fraction of the series' median allowed, if more than {@code absolute}
     */
    public record Tolerance(double absolute, double relative) {
        public Tolerance {
            if (!(absolute >= 0) || !(relative >= 0)) {
                throw new IllegalArgumentException("tolerances are not negative, got " + absolute + " and " + relative);
            }
        }

        double of(double median) {
            return Math.max(absolute, relative * Math.abs(median));
        }
    }

    /**
     * The judgement of one series.
     *
     * @param series        its name
     * @param unit          its unit ({@code MiB}, {@code threads}, ...)
     * @param first         its first sample
     * @param last          its last sample
     * @param min           its smallest sample
     * @param max           its largest sample
     * @param slopePerHour  the least-squares slope of the second half, per hour
     * @param growth        that slope times the second half's length: what it grew by while warm
     * @param tolerance     the growth allowed
     * @param flat          {@code growth <= tolerance}
     */
    public record Verdict(String series, String unit, double first, double last, double min, double max,
                          double slopePerHour, double growth, double tolerance, boolean flat) {
    }

    /**
     * Judges one series.
     *
     * @param seconds when each sample was taken, ascending
     * @param values  the samples
     * @throws IllegalArgumentException with fewer than four samples (two in each half), arrays of different lengths,
     *                                  or times that do not ascend
     */
    public static Verdict judge(String series, String unit, double[] seconds, double[] values, Tolerance tolerance) {
        Objects.requireNonNull(series, "series");
        Objects.requireNonNull(unit, "unit");
        Objects.requireNonNull(tolerance, "tolerance");
        if (seconds.length != values.length) {
            throw new IllegalArgumentException(series + ": " + seconds.length + " times for " + values.length
                    + " samples");
        }
        if (values.length < 4) {
            throw new IllegalArgumentException(series + ": at least 4 samples are needed to judge flatness, got "
                    + values.length + " (sample more often or run longer)");
        }
        for (int i = 1; i < seconds.length; i++) {
            if (!(seconds[i] > seconds[i - 1])) {
                throw new IllegalArgumentException(series + ": sample times must ascend, got " + seconds[i - 1]
                        + " then " + seconds[i]);
            }
        }
        int from = values.length / 2;
        double[] t = Arrays.copyOfRange(seconds, from, seconds.length);
        double[] y = Arrays.copyOfRange(values, from, values.length);
        double slope = slope(t, y);
        double growth = slope * (t[t.length - 1] - t[0]);
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        double median = sorted[sorted.length / 2];
        double allowed = tolerance.of(median);
        return new Verdict(series, unit, values[0], values[values.length - 1], sorted[0], sorted[sorted.length - 1],
                slope * 3600, growth, allowed, growth <= allowed);
    }

    /** The least-squares slope of {@code y} over {@code t}. */
    static double slope(double[] t, double[] y) {
        double mt = Arrays.stream(t).average().orElseThrow();
        double my = Arrays.stream(y).average().orElseThrow();
        double num = 0;
        double den = 0;
        for (int i = 0; i < t.length; i++) {
            num += (t[i] - mt) * (y[i] - my);
            den += (t[i] - mt) * (t[i] - mt);
        }
        return den == 0 ? 0 : num / den;
    }
}
