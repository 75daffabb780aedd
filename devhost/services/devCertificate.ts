import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../files';

/**
 * A local certificate authority and a server certificate for 127.0.0.1 and
 * localhost, made on first start for the devhost's TLS endpoints (the Service
 * Bus administration API, which the SDK only reaches over https).
 *
 * The CA's private key is never written anywhere: it signs the server
 * certificate and is dropped, so trusting `ca.pem` (NODE_EXTRA_CA_CERTS, or the
 * `ca` option of a client) trusts that one certificate and nothing else anyone
 * could sign later. Both are remade when missing, unreadable or within a week
 * of expiry. Built with node:crypto alone (EC P-256, ECDSA with SHA-256): a
 * minimal DER encoder below, no native addon or package.
 */

export interface DevCertificate {
    /** The CA certificate to trust (PEM). */
    caFile: string;
    ca: string;
    /** The server's certificate and key (PEM). */
    cert: string;
    key: string;
}

const VALID_DAYS = 825;
const RENEW_BEFORE_MS = 7 * 86400_000;

export function devCertificate(dir: string, now = new Date()): DevCertificate {
    const caFile = path.join(dir, 'ca.pem');
    const certFile = path.join(dir, 'server.pem');
    const keyFile = path.join(dir, 'server-key.pem');
    const existing = readExisting(caFile, certFile, keyFile, now);
    if (existing) return existing;
    const made = makeCertificates(now);
    mkdirSync(dir, { recursive: true });
    writeFileAtomic(keyFile, made.key, 0o600, true);
    writeFileAtomic(certFile, made.cert, 0o644, true);
    writeFileAtomic(caFile, made.ca, 0o644, true);
    return { caFile, ...made };
}

function readExisting(caFile: string, certFile: string, keyFile: string, now: Date): DevCertificate | undefined {
    if (!existsSync(caFile) || !existsSync(certFile) || !existsSync(keyFile)) return undefined;
    try {
        const ca = readFileSync(caFile, 'utf8');
        const cert = readFileSync(certFile, 'utf8');
        const key = readFileSync(keyFile, 'utf8');
        const x = new X509Certificate(cert);
        const caCert = new X509Certificate(ca);
        const fresh = new Date(x.validTo).getTime() - now.getTime() > RENEW_BEFORE_MS;
        if (!fresh || !x.verify(caCert.publicKey) || !x.checkPrivateKey(createPrivateKey(key)) || !x.checkIP('127.0.0.1')) return undefined;
        return { caFile, ca, cert, key };
    } catch {
        return undefined;
    }
}

/** A fresh CA and a server certificate it signed (exported for tests). */
export function makeCertificates(now = new Date()): { ca: string; cert: string; key: string } {
    const caKeys = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const serverKeys = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const notBefore = new Date(now.getTime() - 3600_000);
    const notAfter = new Date(now.getTime() + VALID_DAYS * 86400_000);
    const caName = name(`Flexchange devhost local CA ${randomBytes(4).toString('hex')}`);
    const caSpki = caKeys.publicKey.export({ type: 'spki', format: 'der' });
    const caKeyId = keyId(caSpki);
    const caCert = certificate({
        issuer: caName,
        subject: caName,
        spki: caSpki,
        notBefore,
        notAfter,
        signer: caKeys.privateKey,
        extensions: [
            extension(OID.basicConstraints, true, seq(bool(true))),
            extension(OID.keyUsage, true, bitString(Buffer.from([0x06]), 1)), // keyCertSign, cRLSign
            extension(OID.subjectKeyIdentifier, false, octets(caKeyId)),
        ],
    });
    const serverSpki = serverKeys.publicKey.export({ type: 'spki', format: 'der' });
    const serverCert = certificate({
        issuer: caName,
        subject: name('127.0.0.1'),
        spki: serverSpki,
        notBefore,
        notAfter,
        signer: caKeys.privateKey,
        extensions: [
            extension(OID.basicConstraints, true, seq()),
            extension(OID.keyUsage, true, bitString(Buffer.from([0x80]), 7)), // digitalSignature
            extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))),
            extension(OID.subjectAltName, false, seq(tlv(0x82, Buffer.from('localhost')), tlv(0x87, Buffer.from([127, 0, 0, 1])))),
            extension(OID.subjectKeyIdentifier, false, octets(keyId(serverSpki))),
            extension(OID.authorityKeyIdentifier, false, seq(tlv(0x80, caKeyId))),
        ],
    });
    return {
        ca: pem('CERTIFICATE', caCert),
        cert: pem('CERTIFICATE', serverCert),
        key: serverKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    };
}

// -- X.509 in DER ----------------------------------------------------------

const OID = {
    ecdsaWithSha256: '1.2.840.10045.4.3.2',
    commonName: '2.5.4.3',
    basicConstraints: '2.5.29.19',
    keyUsage: '2.5.29.15',
    extKeyUsage: '2.5.29.37',
    subjectAltName: '2.5.29.17',
    subjectKeyIdentifier: '2.5.29.14',
    authorityKeyIdentifier: '2.5.29.35',
    serverAuth: '1.3.6.1.5.5.7.3.1',
};

function certificate(c: { issuer: Buffer; subject: Buffer; spki: Buffer; notBefore: Date; notAfter: Date; signer: KeyObject; extensions: Buffer[] }): Buffer {
    const algorithm = seq(oid(OID.ecdsaWithSha256));
    const serial = randomBytes(16);
    serial[0] &= 0x7f; // positive
    const tbs = seq(
        tlv(0xa0, integer(Buffer.from([2]))), // v3
        integer(serial),
        algorithm,
        c.issuer,
        seq(time(c.notBefore), time(c.notAfter)),
        c.subject,
        c.spki,
        tlv(0xa3, seq(...c.extensions)),
    );
    return seq(tbs, algorithm, bitString(sign('sha256', tbs, c.signer), 0));
}

function tlv(tag: number, body: Buffer): Buffer {
    const n = body.length;
    let len: Buffer;
    if (n < 0x80) len = Buffer.from([n]);
    else {
        const bytes: number[] = [];
        for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
        len = Buffer.from([0x80 | bytes.length, ...bytes]);
    }
    return Buffer.concat([Buffer.from([tag]), len, body]);
}

const seq = (...items: Buffer[]) => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => tlv(0x31, Buffer.concat(items));
const octets = (b: Buffer) => tlv(0x04, b);
const bool = (v: boolean) => tlv(0x01, Buffer.from([v ? 0xff : 0]));
const bitString = (b: Buffer, unusedBits: number) => tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), b]));

function integer(b: Buffer): Buffer {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0 && b[i + 1] < 0x80) i++;
    const v = b.subarray(i);
    return tlv(0x02, v[0] >= 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

function oid(dotted: string): Buffer {
    const parts = dotted.split('.').map(Number);
    const bytes = [parts[0] * 40 + parts[1]];
    for (const p of parts.slice(2)) {
        const chunk = [p & 0x7f];
        for (let v = p >> 7; v > 0; v >>= 7) chunk.unshift((v & 0x7f) | 0x80);
        bytes.push(...chunk);
    }
    return tlv(0x06, Buffer.from(bytes));
}

function name(commonName: string): Buffer {
    return seq(set(seq(oid(OID.commonName), tlv(0x0c, Buffer.from(commonName, 'utf8')))));
}

/** UTCTime through 2049, GeneralizedTime after, as RFC 5280 asks. */
function time(d: Date): Buffer {
    const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14); // YYYYMMDDHHMMSS
    return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(`${iso.slice(2)}Z`)) : tlv(0x18, Buffer.from(`${iso}Z`));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
    return critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));
}

function keyId(spki: Buffer): Buffer {
    return createHash('sha1').update(spki).digest();
}

function pem(label: string, der: Buffer): string {
    const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n');
    return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}
