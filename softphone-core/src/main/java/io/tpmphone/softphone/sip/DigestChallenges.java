package io.tpmphone.softphone.sip;

import java.text.ParseException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.ListIterator;
import java.util.Locale;
import java.util.Optional;
import java.util.function.Consumer;
import javax.sip.ClientTransaction;
import javax.sip.InvalidArgumentException;
import javax.sip.SipException;
import javax.sip.header.AuthorizationHeader;
import javax.sip.header.CSeqHeader;
import javax.sip.header.ProxyAuthenticateHeader;
import javax.sip.header.ProxyAuthorizationHeader;
import javax.sip.header.ViaHeader;
import javax.sip.header.WWWAuthenticateHeader;
import javax.sip.message.Request;
import javax.sip.message.Response;

/**
 * Answers a registrar's or proxy's digest challenge ({@code 401}/{@code 407}, RFC 3261 §22, RFC 8760) to a REGISTER
 * or an INVITE of ours by sending the request again with an account's credentials — never twice for one realm unless
 * the nonce went stale, so refused credentials end in a sentence, not a loop. The password is asked of the account for
 * every answer and wiped right after. Thread-safe.
 */
final class DigestChallenges {
    private final Signalling sip;

    DigestChallenges(Signalling sip) {
        this.sip = sip;
    }

    /**
     * Sends the request of {@code ct} that {@code r} challenged again, with our credentials, in a new transaction with
     * CSeq {@code cseq}; {@code sent} gets that transaction. Returns empty when sent, or why the challenge cannot be
     * answered: no usable challenge, or the same realm challenged again after we answered it without the nonce being
     * stale (the credentials were refused).
     */
    Optional<String> answer(ClientTransaction ct, Response r, Registration.Account account, long cseq,
                            Consumer<ClientTransaction> sent) {
        boolean proxy = r.getStatusCode() == Response.PROXY_AUTHENTICATION_REQUIRED;
        Request challenged = ct.getRequest();
        List<DigestAuth.Challenge> offered = new ArrayList<>();
        boolean stale = false;
        ListIterator<?> it = r.getHeaders(proxy ? ProxyAuthenticateHeader.NAME : WWWAuthenticateHeader.NAME);
        while (it.hasNext()) {
            WWWAuthenticateHeader h = (WWWAuthenticateHeader) it.next();
            if (h.getScheme() != null && h.getScheme().equalsIgnoreCase("Digest") && h.getRealm() != null
                    && h.getNonce() != null) {
                offered.add(new DigestAuth.Challenge(h.getRealm(), h.getNonce(), h.getAlgorithm(), h.getQop(),
                        h.getOpaque()));
                stale |= h.isStale();
            }
        }
        String authName = proxy ? ProxyAuthorizationHeader.NAME : AuthorizationHeader.NAME;
        DigestAuth.Challenge chosen;
        try {
            chosen = DigestAuth.choose(offered);
        } catch (DigestAuth.UnsupportedChallengeException e) {
            return Optional.of(e.getMessage());
        }
        ListIterator<?> previous = challenged.getHeaders(authName);
        while (previous.hasNext()) {
            AuthorizationHeader p = (AuthorizationHeader) previous.next();
            if (chosen.realm().equals(p.getRealm()) && !stale) {
                return Optional.of("our credentials for " + account.username() + " in realm \"" + chosen.realm()
                        + "\" were refused");
            }
        }
        char[] password = account.password().get();
        DigestAuth.Answer answer;
        try {
            answer = DigestAuth.answer(chosen, challenged.getMethod(), challenged.getRequestURI().toString(),
                    account.username(), password, sip.hex(16), 1);
        } catch (DigestAuth.UnsupportedChallengeException e) {
            return Optional.of(e.getMessage());
        } finally {
            Arrays.fill(password, '\0');
        }
        try {
            Request retry = (Request) challenged.clone();
            retry.removeHeader(authName);
            retry.removeHeader(ViaHeader.NAME);
            ViaHeader old = (ViaHeader) challenged.getHeader(ViaHeader.NAME);
            retry.addHeader(sip.via(old.getTransport().toLowerCase(Locale.ROOT)));
            ((CSeqHeader) retry.getHeader(CSeqHeader.NAME)).setSeqNumber(cseq);
            AuthorizationHeader auth = proxy ? sip.headers.createProxyAuthorizationHeader("Digest")
                    : sip.headers.createAuthorizationHeader("Digest");
            auth.setUsername(answer.username());
            auth.setRealm(answer.realm());
            auth.setNonce(answer.nonce());
            auth.setURI(challenged.getRequestURI());
            auth.setResponse(answer.response());
            auth.setAlgorithm(answer.algorithm().token());
            if (answer.qop().isPresent()) {
                auth.setQop(answer.qop().get());
                auth.setCNonce(answer.cnonce().orElseThrow());
                auth.setNonceCount(1);
            } else if (answer.cnonce().isPresent()) {
                auth.setCNonce(answer.cnonce().get());
            }
            if (answer.opaque().isPresent()) {
                auth.setOpaque(answer.opaque().get());
            }
            retry.addHeader(auth);
            ClientTransaction next = sip.provider.getNewClientTransaction(retry);
            next.sendRequest();
            sent.accept(next);
            return Optional.empty();
        } catch (ParseException | InvalidArgumentException | SipException e) {
            return Optional.of("cannot send the request again with credentials: " + Signalling.rootMessage(e));
        }
    }
}
