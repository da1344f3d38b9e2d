package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.tpmphone.softphone.AgentBroker;
import io.tpmphone.softphone.BrokerHostIdentity;
import io.tpmphone.softphone.BrokerRefusedException;
import io.tpmphone.softphone.SrtpKeyMaterial;
import io.tpmphone.softphone.control.ControlServer;
import java.lang.reflect.Constructor;
import java.lang.reflect.Executable;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.Type;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * What callers of the phone see (issue 13, item 4): JAIN-SIP is a hostile third-party API that stays behind this
 * package (STYLE §2), and a module's {@code internal} package is its own (STYLE §1) — so neither a {@code javax.sip}
 * or {@code gov.nist} type nor an {@code …internal} one appears in a public member of the types other modules use
 * (SipPhone used to take the internal BrokerClient and throw javax.sip.SipException).
 */
class PublicSurfaceTest {
    private static final List<Class<?>> API = List.of(SipPhone.class, SipPhone.Config.class, SipPhone.Limits.class,
            SipPhone.Limits.Outgoing.class, SipPhone.Keys.class, SipPhone.Media.class, SipPhone.Listener.class,
            Call.class, Registration.class, Registration.Account.class, AuditedDecisions.class, PhoneException.class,
            Sdp.class, AgentBroker.class, BrokerHostIdentity.class, BrokerRefusedException.class,
            SrtpKeyMaterial.class, ControlServer.class);

    @Test
    @Timeout(10)
    void thePublicSurface_showsNeitherJainSipNorInternalTypes() {
        List<String> leaks = new ArrayList<>();
        for (Class<?> c : API) {
            for (Method m : c.getDeclaredMethods()) {
                if (Modifier.isPublic(m.getModifiers()) && !m.isSynthetic()) {
                    check(c, m, leaks);
                    check(c, m.getName() + " returns", m.getGenericReturnType(), leaks);
                }
            }
            for (Constructor<?> k : c.getDeclaredConstructors()) {
                if (Modifier.isPublic(k.getModifiers())) {
                    check(c, k, leaks);
                }
            }
            for (Field f : c.getDeclaredFields()) {
                if (Modifier.isPublic(f.getModifiers())) {
                    check(c, f.getName(), f.getGenericType(), leaks);
                }
            }
        }
        assertEquals(List.of(), leaks, "public members that show JAIN-SIP or internal types");
    }

    private static void check(Class<?> owner, Executable e, List<String> leaks) {
        for (Type t : e.getGenericParameterTypes()) {
            check(owner, e.getName() + " takes", t, leaks);
        }
        for (Type t : e.getGenericExceptionTypes()) {
            check(owner, e.getName() + " throws", t, leaks);
        }
    }

    private static void check(Class<?> owner, String where, Type t, List<String> leaks) {
        String name = t.getTypeName();
        if (name.contains("javax.sip.") || name.contains("gov.nist.") || name.contains(".internal.")) {
            leaks.add(owner.getSimpleName() + "." + where + " " + name);
        }
    }
}
