package io.tpmphone.softphone.sip;

import java.net.InetAddress;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Deque;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The phone's calls, bounded whatever peers send: calls in progress (at most {@code maxCalls}, of which at most
 * {@code maxSettingUp} are still being set up) and the last {@code endedHistory} refused or ended calls for the user.
 * One source of incoming calls (an IPv4 address, an IPv6 /64) has a share of half of each (rounded down, at least
 * one): a peer the policy accepts cannot take every place.
 * A call leaves the table of calls in progress the moment it is refused or ended, with the state that belonged to it
 * (the registrar account its digest challenge needs); the oldest ended call falls out of the history. The SIP that
 * still arrives for a call just ended (the far end's final answer, its CANCEL: the in-band verdict may end the call
 * first) finds it in a short memory by Call-ID ({@link #recentlyEnded}): at most {@link #RECENT} calls, each for
 * {@link #RECENT_AGE}; only calls that were in progress enter it, so requests with made-up Call-IDs add nothing.
 * Thread-safe (one lock; every operation is O(1) except listing).
 */
final class CallTable {
    private final int maxCalls;
    private final int maxSettingUp;
    private final int endedHistory;
    private final int perSourceCalls;
    private final int perSourceSettingUp;
    private final Map<String, Entry> active = new LinkedHashMap<>();
    private final Deque<Call> ended = new ArrayDeque<>();
    /** Incoming calls in progress and being set up, per source: {active, settingUp}. */
    private final Map<InetAddress, int[]> bySource = new HashMap<>();
    private int settingUp;
    /** How many just-ended calls the phone still answers SIP for ({@link #recentlyEnded}). */
    static final int RECENT = 64;
    /**
     * How long after its end a call still gets SIP answered: 64·T1 (RFC 3261 §17), the longest one of its
     * transactions still retransmits. This is no bound on a proxy's INVITE transaction — after a provisional, RFC 3261 Timer C is
     * over 3 minutes, and kamailio's default fr_inv_timeout 120 s — so a proxy's CANCEL may come after the call is
     * forgotten (then 481). That no longer leaves an INVITE hanging: this side answers every INVITE of a call it ends
     * before its 200 with a final response ({@link Signalling#answerIfUnanswered}). Ended calls expire on the next
     * insert or lookup (at most {@link #RECENT} are held meanwhile).
     */
    static final java.time.Duration RECENT_AGE = java.time.Duration.ofSeconds(32);
    /** Just-ended calls by Call-ID, oldest first, with when they ended (System.nanoTime). */
    private final LinkedHashMap<String, Ended> recent = new LinkedHashMap<>();
    private final java.util.function.LongSupplier nanoTime;

    private record Ended(Call call, long at) {
    }

    private static final class Entry {
        final Call call;
        final Registration.Account account;
        final InetAddress source;
        boolean setUp;

        Entry(Call call, Registration.Account account, InetAddress source) {
            this.call = call;
            this.account = account;
            this.source = source;
        }
    }

    CallTable(int maxCalls, int maxSettingUp, int endedHistory) {
        this(maxCalls, maxSettingUp, endedHistory, System::nanoTime);
    }

    /** As above, with the clock that ages {@link #recentlyEnded} (tests). */
    CallTable(int maxCalls, int maxSettingUp, int endedHistory, java.util.function.LongSupplier nanoTime) {
        this.nanoTime = nanoTime;
        if (maxSettingUp < 1 || maxCalls < maxSettingUp || endedHistory < 0) {
            throw new IllegalArgumentException("need 1 <= maxSettingUp <= maxCalls and endedHistory >= 0, got "
                    + maxSettingUp + ", " + maxCalls + ", " + endedHistory);
        }
        this.maxCalls = maxCalls;
        this.maxSettingUp = maxSettingUp;
        this.endedHistory = endedHistory;
        this.perSourceCalls = Math.max(1, maxCalls / 2);
        this.perSourceSettingUp = Math.max(1, maxSettingUp / 2);
    }

    /**
     * Adds a new call being set up, or says why there is no room (a sentence for a 503 and the user); a call whose
     * Call-ID is already in progress is refused as well (it would replace that call). The call leaves by itself when
     * it settles.
     */
    Optional<String> add(Call call, Registration.Account account) {
        return add(call, account, null);
    }

    /** As above, for an incoming call from {@code source} (its share is checked too); null for our own calls. */
    Optional<String> add(Call call, Registration.Account account, InetAddress source) {
        synchronized (this) {
            if (active.containsKey(call.callId())) {
                return Optional.of("a call with this Call-ID is already in progress");
            }
            if (settingUp >= maxSettingUp) {
                return Optional.of(settingUp + " calls are being set up already (at most " + maxSettingUp + ")");
            }
            if (active.size() >= maxCalls) {
                return Optional.of(active.size() + " calls are in progress already (at most " + maxCalls + ")");
            }
            int[] mine = source == null ? null : bySource.getOrDefault(source, new int[2]);
            if (mine != null && mine[1] >= perSourceSettingUp) {
                return Optional.of(mine[1] + " calls from one source are being set up already (at most "
                        + perSourceSettingUp + ")");
            }
            if (mine != null && mine[0] >= perSourceCalls) {
                return Optional.of(mine[0] + " calls from one source are in progress already (at most "
                        + perSourceCalls + ")");
            }
            active.put(call.callId(), new Entry(call, account, source));
            settingUp++;
            if (mine != null) {
                mine[0]++;
                mine[1]++;
                bySource.put(source, mine);
            }
        }
        call.settled().whenComplete((c, e) -> settled(call));
        return Optional.empty();
    }

    /** Once a call is established it no longer counts as being set up; once it is over it moves to the history. */
    private void settled(Call call) {
        synchronized (this) {
            Entry e = active.get(call.callId());
            if (e == null || e.call != call) {
                return;
            }
            if (!e.setUp) {
                e.setUp = true;
                settingUp--;
                if (e.source != null) {
                    bySource.get(e.source)[1]--;
                }
            }
        }
        if (call.state() != Call.State.ESTABLISHED) {
            finished(call);
        } else {
            call.finished().whenComplete((c, x) -> finished(call));
        }
    }

    private synchronized void finished(Call call) {
        Entry e = active.get(call.callId());
        if (e != null && e.call == call) {
            active.remove(call.callId());
            if (e.source != null) {
                int[] mine = bySource.get(e.source);
                if (--mine[0] == 0) {
                    bySource.remove(e.source);
                }
            }
            remember(call);
            long now = nanoTime.getAsLong();
            recent.remove(call.callId());
            recent.put(call.callId(), new Ended(call, now));
            expire(now);
            if (recent.size() > RECENT) {
                recent.remove(recent.keySet().iterator().next());
            }
        }
    }

    /** Forgets the just-ended calls older than {@link #RECENT_AGE} (the map is oldest first). */
    private void expire(long now) {
        for (var it = recent.values().iterator(); it.hasNext(); ) {
            if (now - it.next().at() < RECENT_AGE.toNanos()) {
                return;
            }
            it.remove();
        }
    }

    /**
     * The call with this Call-ID that left the calls in progress less than {@link #RECENT_AGE} ago (one of the last
     * {@link #RECENT}): SIP still arriving for it is answered as its transactions need, and what the far end said is
     * kept with it. Empty for a call in progress, an older one, or a Call-ID never in progress here.
     */
    synchronized Optional<Call> recentlyEnded(String callId) {
        expire(nanoTime.getAsLong());
        Ended e = recent.get(callId);
        return e == null ? Optional.empty() : Optional.of(e.call());
    }

    /** Keeps a call that never entered the table (refused at once) in the ended history, for its caller. */
    synchronized void remember(Call call) {
        if (endedHistory > 0) {
            if (ended.size() == endedHistory) {
                ended.removeFirst();
            }
            ended.addLast(call);
        }
    }

    /** The call in progress with this Call-ID. */
    synchronized Optional<Call> active(String callId) {
        Entry e = active.get(callId);
        return e == null ? Optional.empty() : Optional.of(e.call);
    }

    /** The call in progress with this Call-ID, else the most recent ended one. */
    synchronized Optional<Call> any(String callId) {
        Optional<Call> a = active(callId);
        if (a.isPresent()) {
            return a;
        }
        for (var it = ended.descendingIterator(); it.hasNext(); ) {
            Call c = it.next();
            if (c.callId().equals(callId)) {
                return Optional.of(c);
            }
        }
        return Optional.empty();
    }

    /** The registrar account a call in progress was placed through (it answers the proxy's challenge). */
    synchronized Optional<Registration.Account> account(String callId) {
        Entry e = active.get(callId);
        return e == null ? Optional.empty() : Optional.ofNullable(e.account);
    }

    /** Calls in progress, then the ended history, oldest first. */
    synchronized Collection<Call> all() {
        List<Call> out = new ArrayList<>(active.size() + ended.size());
        active.values().forEach(e -> out.add(e.call));
        out.addAll(ended);
        return List.copyOf(out);
    }

    /** Calls in progress (for stopping the phone). */
    synchronized List<Call> inProgress() {
        List<Call> out = new ArrayList<>(active.size());
        active.values().forEach(e -> out.add(e.call));
        return out;
    }

    /** How much is held: calls in progress, of them being set up, and ended calls kept. For diagnostics and tests. */
    record Counts(int active, int settingUp, int ended, int recentlyEnded) {
    }

    synchronized Counts counts() {
        return new Counts(active.size(), settingUp, ended.size(), recent.size());
    }
}
