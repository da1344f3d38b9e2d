package io.tpmphone.server.internal;

import io.tpmphone.attestation.EccCurve;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.KeyType;
import io.tpmphone.attestation.ObjectAttribute;
import io.tpmphone.attestation.SchemeAlgorithm;
import io.tpmphone.attestation.TpmtPublic;
import java.util.ArrayList;
import java.util.List;

/**
 * What the registrar accepts as an attestation key. A key without {@code restricted} could sign any bytes,
 * including a forged TPMS_ATTEST; without {@code fixedTPM}/{@code fixedParent}/{@code sensitiveDataOrigin} it could
 * have been made or copied outside this TPM. Keylime checks none of this.
 */
public final class AkTemplate {
    private AkTemplate() {
    }

    /** The reasons {@code ak} is not an acceptable AK; empty if it is. */
    public static List<String> violations(TpmtPublic ak) {
        List<String> v = new ArrayList<>();
        for (ObjectAttribute required : List.of(ObjectAttribute.RESTRICTED, ObjectAttribute.SIGN_ENCRYPT,
                ObjectAttribute.FIXED_TPM, ObjectAttribute.FIXED_PARENT, ObjectAttribute.SENSITIVE_DATA_ORIGIN)) {
            if (!ak.has(required)) {
                v.add("attribute " + required + " is not set");
            }
        }
        if (ak.has(ObjectAttribute.DECRYPT)) {
            v.add("attribute DECRYPT is set (an AK signs only)");
        }
        if (ak.nameAlg() != HashAlgorithm.SHA256) {
            v.add("name algorithm is " + ak.nameAlg() + ", not SHA256");
        }
        if (ak.type() == KeyType.ECC) {
            if (ak.curve().orElse(null) != EccCurve.NIST_P256) {
                v.add("curve is " + ak.curve().map(Enum::name).orElse("none") + ", not NIST_P256");
            }
            if (ak.scheme() != SchemeAlgorithm.ECDSA || ak.schemeHash().orElse(null) != HashAlgorithm.SHA256) {
                v.add("scheme is " + ak.scheme() + ak.schemeHash().map(h -> "-" + h).orElse("")
                        + ", not ECDSA-SHA256");
            }
        } else if (ak.type() == KeyType.RSA) {
            if (ak.rsaKeyBits() < 2048) {
                v.add("RSA key has " + ak.rsaKeyBits() + " bits, fewer than 2048");
            }
            if ((ak.scheme() != SchemeAlgorithm.RSASSA && ak.scheme() != SchemeAlgorithm.RSAPSS)
                    || ak.schemeHash().orElse(null) != HashAlgorithm.SHA256) {
                v.add("scheme is " + ak.scheme() + ", not RSASSA/RSAPSS with SHA256");
            }
        } else {
            v.add("type is " + ak.type() + ", not ECC or RSA");
        }
        return v;
    }
}
