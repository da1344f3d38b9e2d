package io.tpmphone.server.internal;

import java.io.IOException;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.channels.SelectableChannel;
import java.nio.channels.SocketChannel;
import java.util.Arrays;
import java.util.concurrent.ConcurrentHashMap;
import org.eclipse.jetty.io.SelectorManager;
import org.eclipse.jetty.util.IO;

/**
 * A bound on the connections open at once from one client address, so that one address cannot take the slots of the
 * server's connection bound that agents and the console need. An IPv4 address counts on its own; IPv6 addresses
 * count by their /64 prefix, the block one host or one subscriber gets, so that a client cannot step around the bound
 * with the addresses of its own /64. A connection over the bound is closed as soon as it is accepted (the client sees
 * the connection closed before the TLS handshake).
 *
 * <p>Added to a connector as a bean ({@link SelectorManager.AcceptListener}): Jetty tells it of every accepted
 * network connection and of its close, whatever protocols run over it (a TLS connection counts once). Add it after
 * a {@code NetworkConnectionLimit}, so that a connection that bound already closed is not counted here. Memory: one
 * entry per open connection and per address with one open. Thread-safe.
 */
public final class ClientAddressLimit implements SelectorManager.AcceptListener {
    /** What a refusal is reported to. */
    public interface Refusals {
        /** A connection from {@code address} was closed at accept: {@code open} were open from it (its /64). */
        void refused(InetAddress address, int open);
    }

    private final int maxPerAddress;
    private final Refusals refusals;
    /** Open connections per address key; an entry is removed when its count reaches zero. */
    private final ConcurrentHashMap<AddressKey, Integer> open = new ConcurrentHashMap<>();
    /** The key each admitted connection was counted under (its address cannot be read once it is closed). */
    private final ConcurrentHashMap<SelectableChannel, AddressKey> admitted = new ConcurrentHashMap<>();

    public ClientAddressLimit(int maxPerAddress, Refusals refusals) {
        if (maxPerAddress < 1) {
            throw new IllegalArgumentException("the per-address connection bound must be >= 1, got " + maxPerAddress);
        }
        this.maxPerAddress = maxPerAddress;
        this.refusals = java.util.Objects.requireNonNull(refusals, "refusals");
    }

    public int maxPerAddress() {
        return maxPerAddress;
    }

    /** Connections open now from {@code address} (its /64 for IPv6). */
    public int openFrom(InetAddress address) {
        return open.getOrDefault(AddressKey.of(address), 0);
    }

    /** Addresses (IPv6: /64 prefixes) with a connection open now. */
    public int addresses() {
        return open.size();
    }

    @Override
    public void onAccepting(SelectableChannel channel) {
        if (!channel.isOpen() || !(channel instanceof SocketChannel socket)) {
            return; // refused by the connection bound before us; not counted here
        }
        InetAddress address;
        try {
            SocketAddress remote = socket.getRemoteAddress();
            if (!(remote instanceof InetSocketAddress inet)) {
                return;
            }
            address = inet.getAddress();
        } catch (IOException e) {
            return; // closed under us: Jetty's accept fails and nothing is counted
        }
        AddressKey key = AddressKey.of(address);
        int[] before = new int[1];
        open.compute(key, (k, n) -> {
            before[0] = n == null ? 0 : n;
            return before[0] >= maxPerAddress ? n : Integer.valueOf(before[0] + 1);
        });
        if (before[0] >= maxPerAddress) {
            IO.close(channel); // Jetty then reports the accept as failed to every listener
            refusals.refused(address, before[0]);
            return;
        }
        admitted.put(channel, key);
    }

    @Override
    public void onAcceptFailed(SelectableChannel channel, Throwable cause) {
        release(channel);
    }

    @Override
    public void onClosed(SelectableChannel channel) {
        release(channel);
    }

    /** Idempotent: a channel is released once, whichever of Jetty's notifications comes first. */
    private void release(SelectableChannel channel) {
        AddressKey key = admitted.remove(channel);
        if (key != null) {
            open.computeIfPresent(key, (k, n) -> n <= 1 ? null : n - 1);
        }
    }

    /** An IPv4 address, or the first 8 bytes (the /64) of an IPv6 one. Package-private for tests. */
    record AddressKey(byte[] bytes) {
        static AddressKey of(InetAddress address) {
            byte[] b = address.getAddress();
            return new AddressKey(address instanceof Inet6Address ? Arrays.copyOf(b, 8) : b);
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof AddressKey k && Arrays.equals(bytes, k.bytes);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(bytes);
        }

        @Override
        public String toString() {
            return Arrays.toString(bytes);
        }
    }
}
