package io.tpmphone.softphone.sip;

import io.tpmphone.softphone.CallPolicy;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnknownHostException;
import java.util.Iterator;
import java.util.Optional;
import javax.sip.Dialog;
import javax.sip.address.Address;
import javax.sip.address.SipURI;
import javax.sip.address.URI;
import javax.sip.header.RouteHeader;

/**
 * Where the phone may send, and which connections it keeps: it connects and sends only to destinations it chose
 * ({@link #chose}: its registrars, a call's first hop, a call's dialog's remote target or first route), whatever a
 * peer's Via says ({@link AttestedNetworkLayer}); and a connection that carries a call in progress or a registration
 * stays open however idle ({@link #carriesCallOrRegistration}, {@link ConnectionTable}). Thread-safe (it only reads).
 */
final class Destinations {
    private final Registrations registrations;
    private final CallTable calls;
    private final ConnectionAttestation attestation;

    Destinations(Registrations registrations, CallTable calls, ConnectionAttestation attestation) {
        this.registrations = registrations;
        this.calls = calls;
        this.attestation = attestation;
    }

    /**
     * Whether the connection to {@code remote} carries a call in progress (the first hop of one we placed, or the
     * connection an incoming one came over) or one of our registrations (the connection to its registrar).
     */
    boolean carriesCallOrRegistration(InetSocketAddress remote) {
        for (Call c : calls.inProgress()) {
            if (remote.equals(c.hop().orElse(null))) {
                return true;
            }
        }
        for (Registration r : registrations.all()) {
            InetSocketAddress registrar = r.account().registrar();
            if (r.state() != Registration.State.UNREGISTERED && remote.getPort() == registrar.getPort()
                    && remote.getAddress().equals(registrar.getAddress())) {
                return true;
            }
        }
        return false;
    }

    /**
     * Whether this phone chose {@code destination} to send to: a registrar of a registration not ended, the first hop of
     * a call it places, or, for a call in progress either way, its dialog's remote target or first route (where
     * requests within the call go, RFC 3261 §12.2.1.1). A host name is resolved as JAIN-SIP would.
     */
    boolean chose(InetSocketAddress destination) {
        for (Registration r : registrations.all()) {
            if (r.state() != Registration.State.UNREGISTERED && same(r.account().registrar(), destination)) {
                return true;
            }
        }
        for (SocketAddress hop : attestation.hopsSettingUp()) {
            if (hop instanceof InetSocketAddress h && same(h, destination)) {
                return true;
            }
        }
        for (Call c : calls.inProgress()) {
            if (c.direction() == CallPolicy.Direction.OUT && c.hop().filter(h -> same(h, destination)).isPresent()) {
                return true;
            }
            Optional<Dialog> dialog = c.dialog();
            if (dialog.isEmpty()) {
                continue;
            }
            Address target = dialog.get().getRemoteTarget();
            if (target != null && isAt(target.getURI(), destination)) {
                return true;
            }
            Iterator<?> routes = dialog.get().getRouteSet();
            if (routes != null && routes.hasNext() && routes.next() instanceof RouteHeader first
                    && isAt(first.getAddress().getURI(), destination)) {
                return true;
            }
        }
        return false;
    }

    private static boolean same(InetSocketAddress a, InetSocketAddress b) {
        if (a.getPort() != b.getPort()) {
            return false;
        }
        if (a.getAddress() != null) {
            return a.getAddress().equals(b.getAddress());
        }
        return resolvesTo(a.getHostString(), b.getAddress());
    }

    /** Whether a SIP URI's host and port (5061 for sips: or transport=tls, else 5060) are {@code destination}. */
    private static boolean isAt(URI uri, InetSocketAddress destination) {
        if (!(uri instanceof SipURI u) || u.getHost() == null) {
            return false;
        }
        int port = u.getPort() > 0 ? u.getPort()
                : u.isSecure() || "tls".equalsIgnoreCase(u.getTransportParam()) ? 5061 : 5060;
        return port == destination.getPort() && resolvesTo(u.getHost(), destination.getAddress());
    }

    private static boolean resolvesTo(String host, InetAddress address) {
        if (address == null) {
            return false;
        }
        String h = host.startsWith("[") && host.endsWith("]") ? host.substring(1, host.length() - 1) : host;
        try {
            for (InetAddress a : InetAddress.getAllByName(h)) {
                if (a.equals(address)) {
                    return true;
                }
            }
        } catch (UnknownHostException e) {
            return false;
        }
        return false;
    }
}
