package io.tpmphone.agent;

import java.util.concurrent.CountDownLatch;

/**
 * A stand-in softphone that ignores its stdin and runs until it is killed: whatever ends it is the launch wrapper's
 * doing, not an EOF it saw. JDK classes only: its jar holds this class alone.
 */
public final class IdleProbe {
    private IdleProbe() {
    }

    public static void main(String[] args) throws InterruptedException {
        System.out.println("probe ready");
        System.out.flush();
        new CountDownLatch(1).await();
    }
}
