package io.tpmphone.softphone.sip;

import io.tpmphone.attestation.UntrustedText;
import java.text.ParseException;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.ListIterator;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import javax.sip.ClientTransaction;
import javax.sip.InvalidArgumentException;
import javax.sip.SipException;
import javax.sip.address.Address;
import javax.sip.address.SipURI;
import javax.sip.header.AuthorizationHeader;
import javax.sip.header.ContactHeader;
import javax.sip.header.ExpiresHeader;
import javax.sip.header.MinExpiresHeader;
import javax.sip.header.ProxyAuthorizationHeader;
import javax.sip.header.WarningHeader;
import javax.sip.message.Request;
import javax.sip.message.Response;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The phone's registrations (RFC 3261 §10): REGISTER with our contact for the account's transport, a digest challenge
 * answered ({@link DigestChallenges}), the binding refreshed at half the granted time, {@code 423 Interval Too Brief}
 * honoured, a failure retried after 5 s doubling up to 60 s, and {@code Expires: 0} to remove it. One Call-ID per
 * registration, the key of its state here. Thread-safe; refreshes and retries run on the phone's timer thread.
 */
final class Registrations {
    private static final Logger LOG = LoggerFactory.getLogger(SipPhone.class);

    private final Signalling sip;
    private final DigestChallenges challenges;
    private final SipPhone.Listener listener;
    private final Clock clock;
    private final ScheduledExecutorService timers;
    /** Registrations by their Call-ID (one per registration, RFC 3261 §10.2.4). */
    private final Map<String, Registration> registrations = new ConcurrentHashMap<>();
    /** Registrations being removed, with what their remover waits on. */
    private final Map<String, CountDownLatch> unregistering = new ConcurrentHashMap<>();

    Registrations(Signalling sip, DigestChallenges challenges, SipPhone.Listener listener, Clock clock,
                  ScheduledExecutorService timers) {
        this.sip = sip;
        this.challenges = challenges;
        this.listener = listener;
        this.clock = clock;
        this.timers = timers;
    }

    /** Registers our contact for {@code account}'s address of record; returns at once. */
    Registration register(Registration.Account account) {
        if (sip.port(account.transport()) <= 0) {
            throw new IllegalArgumentException("this phone does not listen on " + account.transport());
        }
        Registration reg = new Registration(account, sip.callId());
        registrations.put(reg.callId(), reg);
        sendRegister(reg, account.expires().toSeconds());
        return reg;
    }

    /** Removes our binding (REGISTER with Expires 0) and stops refreshing; waits at most {@code timeout}. */
    void unregister(Registration reg, Duration timeout) throws InterruptedException {
        reg.cancelSchedule();
        if (reg.state() != Registration.State.REGISTERED) {
            reg.unregistered("not registered");
            return;
        }
        CountDownLatch done = new CountDownLatch(1);
        unregistering.put(reg.callId(), done);
        sendRegister(reg, 0);
        if (!done.await(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
            reg.unregistered("the registrar did not confirm the unregistration within " + timeout.toSeconds()
                    + " s");
        }
        unregistering.remove(reg.callId());
    }

    /** Every registration the phone made (ended ones included until the phone stops). */
    Collection<Registration> all() {
        return registrations.values();
    }

    /** The registration whose REGISTERs carry this Call-ID. */
    Registration byCallId(String callId) {
        return registrations.get(callId);
    }

    private void sendRegister(Registration reg, long expires) {
        Registration.Account a = reg.account();
        try {
            SipURI aor = (SipURI) sip.addresses.createURI(a.aor());
            SipURI registrar = sip.addresses.createSipURI(null, aor.getHost());
            registrar.setSecure(aor.isSecure());
            Address address = sip.addresses.createAddress(aor);
            Request r = sip.messages.createRequest(registrar, Request.REGISTER,
                    sip.headers.createCallIdHeader(reg.callId()),
                    sip.headers.createCSeqHeader(reg.nextCseq(), Request.REGISTER),
                    sip.headers.createFromHeader(address, sip.tag()), sip.headers.createToHeader(address, null),
                    new ArrayList<>(List.of(sip.via(a.transport()))), sip.headers.createMaxForwardsHeader(70));
            r.addHeader(sip.route(a.registrar(), a.transport()));
            r.addHeader(sip.contact(a.transport()));
            r.addHeader(sip.headers.createExpiresHeader((int) Math.min(Integer.MAX_VALUE, expires)));
            sip.provider.getNewClientTransaction(r).sendRequest();
        } catch (ParseException | InvalidArgumentException | ClassCastException e) {
            failed(reg, "cannot build the REGISTER for " + a.aor() + ": " + e.getMessage());
        } catch (SipException e) {
            failed(reg, "cannot send the REGISTER to " + a.registrar() + ": " + Signalling.rootMessage(e));
        }
    }

    /** A registration's REGISTER failed: retried after 5 s, doubling up to 60 s (an unregistration just ends). */
    void failed(Registration reg, String reason) {
        // The reason can carry the registrar's text (a realm, a qop, an algorithm name): escaped once, here, for the
        // log, the registration's state and the control channel alike.
        String why = UntrustedText.forTerminal(reason, 400);
        CountDownLatch unreg = unregistering.get(reg.callId());
        if (unreg != null) {
            reg.unregistered("unregistration failed: " + why);
            unreg.countDown();
            return;
        }
        int failures = reg.failed(why);
        long delay = Math.min(60, 5L << Math.min(4, failures - 1));
        LOG.info("registration of {} failed ({}); retrying in {} s", reg.account().aor(), why, delay);
        listener.registration(reg);
        try {
            reg.schedule(timers.schedule(() -> sendRegister(reg, reg.account().expires().toSeconds()), delay,
                    TimeUnit.SECONDS));
        } catch (RejectedExecutionException stopping) {
            // the phone is stopping: no retry
        }
    }

    /** The registrar's answer to one of our REGISTERs. */
    void answered(ClientTransaction ct, Response r, Registration reg) {
        int status = r.getStatusCode();
        if (status < 200) {
            return;
        }
        Request sent = ct.getRequest();
        ExpiresHeader asked = sent.getExpires();
        boolean removing = asked != null && asked.getExpires() == 0;
        if (status == Response.UNAUTHORIZED || status == Response.PROXY_AUTHENTICATION_REQUIRED) {
            challenges.answer(ct, r, reg.account(), reg.nextCseq(), next -> { })
                    .ifPresent(problem -> failed(reg, status + " from the registrar: " + problem));
            return;
        }
        if (status == Response.INTERVAL_TOO_BRIEF && !removing) {
            MinExpiresHeader min = (MinExpiresHeader) r.getHeader(MinExpiresHeader.NAME);
            if (min != null && min.getExpires() > (asked == null ? 0 : asked.getExpires())) {
                sendRegister(reg, min.getExpires());
                return;
            }
        }
        if (status >= 300) {
            WarningHeader w = (WarningHeader) r.getHeader(WarningHeader.NAME);
            failed(reg, "the registrar answered " + status + " " + String.valueOf(r.getReasonPhrase())
                    + (w != null ? ": " + w.getText() : ""));
            return;
        }
        if (removing) {
            reg.unregistered("unregistered");
            CountDownLatch done = unregistering.get(reg.callId());
            if (done != null) {
                done.countDown();
            }
            listener.registration(reg);
            return;
        }
        long granted = grantedSeconds(r, asked == null ? reg.account().expires().toSeconds() : asked.getExpires());
        if (granted <= 0) {
            failed(reg, "the registrar's 200 lists no binding for our contact");
            return;
        }
        AuthorizationHeader used = (AuthorizationHeader) sent.getHeader(AuthorizationHeader.NAME);
        if (used == null) {
            used = (AuthorizationHeader) sent.getHeader(ProxyAuthorizationHeader.NAME);
        }
        reg.registered(Duration.ofSeconds(granted), clock.instant(), used == null ? null
                : used.getAlgorithm() == null ? "MD5" : used.getAlgorithm());
        LOG.info("registered {} at {} for {} s", reg.account().aor(), reg.account().registrar(), granted);
        listener.registration(reg);
        long refreshMs = Math.max(1000, granted * 500);
        try {
            reg.schedule(timers.schedule(() -> sendRegister(reg, reg.account().expires().toSeconds()), refreshMs,
                    TimeUnit.MILLISECONDS));
        } catch (RejectedExecutionException stopping) {
            // the phone is stopping: no refresh
        }
    }

    /** The time granted to our contact: its expires parameter in the 200, else the Expires header, else asked. */
    private long grantedSeconds(Response r, long asked) {
        ExpiresHeader global = r.getExpires();
        ListIterator<?> it = r.getHeaders(ContactHeader.NAME);
        boolean anyContact = false;
        while (it.hasNext()) {
            ContactHeader c = (ContactHeader) it.next();
            anyContact = true;
            if (c.getAddress().getURI() instanceof SipURI u && sip.config.user().equals(u.getUser())
                    && sip.config.address().getHostAddress().equals(u.getHost()) && isOurPort(u.getPort())) {
                return c.getExpires() >= 0 ? c.getExpires() : global != null ? global.getExpires() : asked;
            }
        }
        return anyContact ? 0 : global != null ? global.getExpires() : asked;
    }

    private boolean isOurPort(int port) {
        SipPhone.Config config = sip.config;
        return port == config.tlsPort() || port == config.tcpPort() || port == config.udpPort();
    }

    /** Ends every registration (the phone stops): each is removed at its registrar, waiting at most 2 s each. */
    void close() {
        for (Registration reg : registrations.values()) {
            try {
                unregister(reg, Duration.ofSeconds(2));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
    }
}
