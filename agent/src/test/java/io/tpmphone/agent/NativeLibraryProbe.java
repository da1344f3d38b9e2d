package io.tpmphone.agent;

import java.util.concurrent.CountDownLatch;

/**
 * A stand-in softphone that loads the native libraries named in its arguments the way the softphone does
 * ({@link System#loadLibrary}, from {@code java.library.path}), says which loaded or why not, and runs until killed.
 * JDK classes only: its jar holds this class alone.
 */
public final class NativeLibraryProbe {
    private NativeLibraryProbe() {
    }

    public static void main(String[] args) throws InterruptedException {
        System.out.println("java.library.path=" + System.getProperty("java.library.path"));
        for (String name : args) {
            try {
                System.loadLibrary(name);
                System.out.println("loaded " + name);
            } catch (LinkageError e) {
                System.out.println("not loaded " + name + ": " + e);
            }
        }
        System.out.println("probe ready");
        System.out.flush();
        new CountDownLatch(1).await();
    }
}
