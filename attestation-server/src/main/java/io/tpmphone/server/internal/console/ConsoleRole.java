package io.tpmphone.server.internal.console;

/** What a console session may do: every view for both; policy changes only for {@link #ADMIN}. */
public enum ConsoleRole {
    /** Signed in with the operator's admin token. */
    ADMIN,
    /** Signed in with the read-only auditor credential. */
    AUDITOR;

    /** Lower-case name, as shown and recorded. */
    public String label() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
