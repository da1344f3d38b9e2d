package io.tpmphone.attestation.internal;

import io.tpmphone.attestation.EccCurve;
import java.math.BigInteger;
import java.security.AlgorithmParameters;
import java.security.InvalidKeyException;
import java.security.NoSuchAlgorithmException;
import java.security.spec.ECFieldFp;
import java.security.spec.ECGenParameterSpec;
import java.security.spec.ECParameterSpec;
import java.security.spec.ECPoint;
import java.security.spec.EllipticCurve;
import java.security.spec.InvalidParameterSpecException;

/** JCA parameters of the supported curves and public-point validation. */
public final class EcCurves {
    private EcCurves() {
    }

    public static ECParameterSpec parameters(EccCurve curve) {
        try {
            AlgorithmParameters p = AlgorithmParameters.getInstance("EC");
            p.init(new ECGenParameterSpec(curve.jcaName()));
            return p.getParameterSpec(ECParameterSpec.class);
        } catch (NoSuchAlgorithmException | InvalidParameterSpecException e) {
            throw new IllegalStateException("the JDK lacks the curve " + curve.jcaName(), e);
        }
    }

    /**
     * The point (x, y) after checking it is an affine point on the curve (the curves here have cofactor 1, so
     * that also puts it in the prime-order group).
     */
    public static ECPoint validatedPoint(EccCurve curve, ECParameterSpec params, BigInteger x, BigInteger y)
            throws InvalidKeyException {
        EllipticCurve c = params.getCurve();
        BigInteger p = ((ECFieldFp) c.getField()).getP();
        if (x.signum() < 0 || y.signum() < 0 || x.compareTo(p) >= 0 || y.compareTo(p) >= 0) {
            throw new InvalidKeyException("ECC point coordinates are not field elements of " + curve.jcaName());
        }
        BigInteger lhs = y.multiply(y).mod(p);
        BigInteger rhs = x.multiply(x).multiply(x).add(c.getA().multiply(x)).add(c.getB()).mod(p);
        if (!lhs.equals(rhs)) {
            throw new InvalidKeyException("ECC point is not on the curve " + curve.jcaName());
        }
        return new ECPoint(x, y);
    }

    /** {@code v} as an unsigned big-endian number of exactly {@code length} bytes. */
    public static byte[] fixedLength(BigInteger v, int length) {
        byte[] raw = v.toByteArray();
        if (raw.length == length) {
            return raw;
        }
        if (raw.length == length + 1 && raw[0] == 0) {
            byte[] out = new byte[length];
            System.arraycopy(raw, 1, out, 0, length);
            return out;
        }
        if (raw.length < length) {
            byte[] out = new byte[length];
            System.arraycopy(raw, 0, out, length - raw.length, raw.length);
            return out;
        }
        throw new IllegalArgumentException("value does not fit in " + length + " bytes");
    }
}
