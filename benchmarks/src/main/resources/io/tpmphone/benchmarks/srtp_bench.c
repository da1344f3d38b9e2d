/*
 * srtp_bench.c: what one SRTP protect and one SRTP unprotect of a 172-byte RTP packet cost with the system's libsrtp2
 * (AES_CM_128_HMAC_SHA1_80), measured the same way as SrtpBenchmark measures our stack (libjitsi / jitsi-srtp).
 *
 * `tpmphone bench srtp` compiles this file at run time (gcc ... -lsrtp2) into the build directory and runs it; see
 * benchmarks/README.md. Usage:
 *
 *     srtp_bench RING BATCHES_PER_ROUND WARMUP_ROUNDS ROUNDS
 *
 * One long-lived sender session and one long-lived receiver session, as in a call. A batch: write RING plaintext
 * packets with the next sequence numbers (untimed), time srtp_protect over all of them in place, then time
 * srtp_unprotect over the same, now protected, packets in place, then check every result against the plaintext
 * (untimed). Sequence numbers only ever increase (and wrap into the rollover counter), so neither session's replay
 * check ever refuses a packet; any status other than srtp_err_status_ok ends the run with exit code 1. A round is
 * BATCHES_PER_ROUND batches; its figure is the timed nanoseconds divided by the packets. Prints key=value lines:
 * per-round figures, their medians (over ROUNDS, after WARMUP_ROUNDS unrecorded), one reference packet protected by a
 * fresh session (the caller compares it with our stack's output for the same input), and which crypto libraries
 * were mapped into the process.
 *
 * The packet layout, key (byte i = i*7+1) and SSRC must stay equal to SrtpPacketPath.java.
 */
#define _POSIX_C_SOURCE 200809L
#include <srtp2/srtp.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HEADER_BYTES 12
#define PAYLOAD_BYTES 160 /* 20 ms of PCMU at 8000 Hz */
#define PACKET_BYTES (HEADER_BYTES + PAYLOAD_BYTES)
#define SLOT_BYTES 256 /* room for the 10-byte tag (and libsrtp's SRTP_MAX_TRAILER_LEN) */
#define SSRC 0x74706d70u /* "tpmp" */
#define KEY_AND_SALT_BYTES 30
#define REFERENCE_INDEX 0x1234u

static void fail(const char *what, long detail) {
    fprintf(stderr, "srtp_bench: %s (%ld)\n", what, detail);
    exit(1);
}

/* The RTP packet with packet index n (sequence number n mod 2^16): V=2, PT=0 (PCMU), timestamp n*160, fixed SSRC. */
static void write_packet(uint8_t *p, uint64_t n) {
    uint16_t seq = (uint16_t) n;
    uint32_t ts = (uint32_t) (n * 160u);
    uint32_t ssrc = SSRC;
    p[0] = 0x80;
    p[1] = 0x00;
    p[2] = (uint8_t) (seq >> 8);
    p[3] = (uint8_t) seq;
    p[4] = (uint8_t) (ts >> 24);
    p[5] = (uint8_t) (ts >> 16);
    p[6] = (uint8_t) (ts >> 8);
    p[7] = (uint8_t) ts;
    p[8] = (uint8_t) (ssrc >> 24);
    p[9] = (uint8_t) (ssrc >> 16);
    p[10] = (uint8_t) (ssrc >> 8);
    p[11] = (uint8_t) ssrc;
    for (int i = 0; i < PAYLOAD_BYTES; i++) {
        p[HEADER_BYTES + i] = (uint8_t) (n + 3u * (unsigned) i);
    }
}

static srtp_t session(uint8_t *key) {
    srtp_policy_t policy;
    srtp_t s;
    memset(&policy, 0, sizeof policy);
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtp);
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtcp);
    policy.ssrc.type = ssrc_specific;
    policy.ssrc.value = SSRC;
    policy.key = key;
    policy.window_size = 0;     /* libsrtp's default (128) */
    policy.allow_repeat_tx = 0; /* as in a call: never protect one index twice */
    srtp_err_status_t st = srtp_create(&s, &policy);
    if (st != srtp_err_status_ok) {
        fail("srtp_create failed", st);
    }
    return s;
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t) t.tv_sec * 1000000000u + (uint64_t) t.tv_nsec;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

static double median(const double *values, int count) {
    double *sorted = malloc(sizeof(double) * (size_t) count);
    if (sorted == NULL) {
        fail("out of memory", count);
    }
    memcpy(sorted, values, sizeof(double) * (size_t) count);
    qsort(sorted, (size_t) count, sizeof(double), compare_doubles);
    double m = count % 2 ? sorted[count / 2] : (sorted[count / 2 - 1] + sorted[count / 2]) / 2;
    free(sorted);
    return m;
}

static void print_figures(const char *name, const double *values, int count) {
    printf("%s_ns_rounds=", name);
    for (int i = 0; i < count; i++) {
        printf(i ? ",%.1f" : "%.1f", values[i]);
    }
    printf("\n%s_ns_median=%.1f\n", name, median(values, count));
}

/* Basenames of the crypto libraries mapped into this process: where libsrtp2's AES and HMAC-SHA1 come from. */
static void print_crypto_libraries(void) {
    static const char *wanted[] = {"libcrypto", "libnss3", "libsoftokn3", "libfreebl", "libgcrypt"};
    char seen[16][128];
    int count = 0;
    char line[1024];
    FILE *maps = fopen("/proc/self/maps", "r");
    printf("crypto_libraries=");
    if (maps != NULL) {
        while (fgets(line, sizeof line, maps) != NULL) {
            char *path = strchr(line, '/');
            if (path == NULL) {
                continue;
            }
            path[strcspn(path, "\n")] = '\0';
            const char *base = strrchr(path, '/') + 1;
            int match = 0;
            for (size_t w = 0; w < sizeof wanted / sizeof wanted[0]; w++) {
                match |= strncmp(base, wanted[w], strlen(wanted[w])) == 0;
            }
            int known = 0;
            for (int i = 0; i < count; i++) {
                known |= strcmp(seen[i], base) == 0;
            }
            if (match && !known && count < 16) {
                snprintf(seen[count], sizeof seen[count], "%s", base);
                printf(count ? " %s" : "%s", base);
                count++;
            }
        }
        fclose(maps);
    }
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: srtp_bench RING BATCHES_PER_ROUND WARMUP_ROUNDS ROUNDS\n");
        return 2;
    }
    int ring = atoi(argv[1]), batches = atoi(argv[2]), warmup = atoi(argv[3]), rounds = atoi(argv[4]);
    if (ring < 1 || batches < 1 || warmup < 0 || rounds < 1) {
        fprintf(stderr, "srtp_bench: RING, BATCHES_PER_ROUND and ROUNDS must be at least 1, WARMUP_ROUNDS at least 0\n");
        return 2;
    }

    uint8_t key[KEY_AND_SALT_BYTES];
    for (int i = 0; i < KEY_AND_SALT_BYTES; i++) {
        key[i] = (uint8_t) (i * 7 + 1);
    }
    srtp_err_status_t st = srtp_init();
    if (st != srtp_err_status_ok) {
        fail("srtp_init failed", st);
    }
    printf("libsrtp_version=%s\n", srtp_get_version_string());
    printf("packet_bytes=%d\nring=%d\nbatches_per_round=%d\nwarmup_rounds=%d\nrounds=%d\n", PACKET_BYTES, ring,
           batches, warmup, rounds);

    /* The reference packet: index REFERENCE_INDEX protected by a fresh session. */
    uint8_t reference[SLOT_BYTES];
    int reference_len = PACKET_BYTES;
    srtp_t fresh = session(key);
    write_packet(reference, REFERENCE_INDEX);
    st = srtp_protect(fresh, reference, &reference_len);
    if (st != srtp_err_status_ok) {
        fail("srtp_protect of the reference packet failed", st);
    }
    srtp_dealloc(fresh);
    printf("reference_srtp=");
    for (int i = 0; i < reference_len; i++) {
        printf("%02x", reference[i]);
    }
    printf("\n");

    uint8_t *packets = aligned_alloc(64, (size_t) ring * SLOT_BYTES);
    uint8_t expected[PACKET_BYTES];
    double *protect_ns = malloc(sizeof(double) * (size_t) rounds);
    double *unprotect_ns = malloc(sizeof(double) * (size_t) rounds);
    if (packets == NULL || protect_ns == NULL || unprotect_ns == NULL) {
        fail("out of memory", ring);
    }
    srtp_t sender = session(key);
    srtp_t receiver = session(key);
    uint64_t next_index = 1;

    for (int r = 0; r < warmup + rounds; r++) {
        uint64_t protect_total = 0, unprotect_total = 0;
        for (int b = 0; b < batches; b++) {
            uint64_t first = next_index;
            for (int i = 0; i < ring; i++) {
                write_packet(packets + (size_t) i * SLOT_BYTES, next_index++);
            }
            uint64_t t0 = now_ns();
            for (int i = 0; i < ring; i++) {
                int len = PACKET_BYTES;
                if (srtp_protect(sender, packets + (size_t) i * SLOT_BYTES, &len) != srtp_err_status_ok) {
                    fail("srtp_protect failed at packet index", (long) (first + (uint64_t) i));
                }
            }
            uint64_t t1 = now_ns();
            for (int i = 0; i < ring; i++) {
                int len = PACKET_BYTES + 10;
                if (srtp_unprotect(receiver, packets + (size_t) i * SLOT_BYTES, &len) != srtp_err_status_ok
                    || len != PACKET_BYTES) {
                    fail("srtp_unprotect failed at packet index", (long) (first + (uint64_t) i));
                }
            }
            uint64_t t2 = now_ns();
            for (int i = 0; i < ring; i++) {
                write_packet(expected, first + (uint64_t) i);
                if (memcmp(expected, packets + (size_t) i * SLOT_BYTES, PACKET_BYTES) != 0) {
                    fail("unprotect did not give back the plaintext at packet index", (long) (first + (uint64_t) i));
                }
            }
            protect_total += t1 - t0;
            unprotect_total += t2 - t1;
        }
        if (r >= warmup) {
            double packets_per_round = (double) ring * batches;
            protect_ns[r - warmup] = (double) protect_total / packets_per_round;
            unprotect_ns[r - warmup] = (double) unprotect_total / packets_per_round;
        }
    }
    print_figures("protect", protect_ns, rounds);
    print_figures("unprotect", unprotect_ns, rounds);
    print_crypto_libraries();

    srtp_dealloc(sender);
    srtp_dealloc(receiver);
    srtp_shutdown();
    free(packets);
    free(protect_ns);
    free(unprotect_ns);
    return 0;
}
