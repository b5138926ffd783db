import { createHash, createPrivateKey, sign, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';

/**
 * Signed producer identity for the shared input topics (arc.telemetry.node, arc.result.inference).
 *
 * Kafka's ACLs keep a node of one geozone off another geozone's dispatch topic, but every node must
 * WRITE to the shared input topics, and a consumer cannot see the TLS principal that produced a
 * message. So a node signs each message it produces with its certificate's private key and sends the
 * certificate and the signature in headers; the region checks both before the input reaches an actor:
 * the certificate chains to the node CA it trusts, is within its validity, the signature covers this
 * topic, key and value, and the certificate's geozone (its OU) is the geozone the message claims.
 *
 * A node certificate is the one `node scripts/kafka/kafka.mjs node-cert` makes, subject
 * O=arcnet-node, OU=<GEOZONE>, CN=<node-id> (Kafka maps it to the principal User:node.<GEOZONE>).
 *
 * The whole certificate travels with every message (about 650 base64 characters for P-256) rather than
 * a fingerprint the region might have seen before: a region that restarted, or a second region taking
 * over a geozone, must be able to verify the very first message it reads. The region caches the
 * outcome of the certificate checks by fingerprint, so a known certificate costs a hash and one
 * signature verification per message.
 *
 * Not covered: replay. A captured message can be produced again by anyone allowed to write the topic;
 * it still names its signer's geozone, so it cannot move telemetry or results across geozones, and the
 * shards already treat repeated telemetry and results as duplicates.
 */

/** Header names. */
export const nodeIdentityHeaders = {
  /** The node's certificate, DER, base64. */
  certificate: 'x-arcnet-node-cert',
  /** Signature over (topic, key, value) with the certificate's key, base64. */
  signature: 'x-arcnet-signature',
} as const;

export const nodeIdentityLimits = {
  /** Longest certificate header accepted (base64 characters): an RSA-4096 certificate is about 2,000. */
  maxCertificateChars: 8 * 1024,
  /** Longest signature header accepted (base64 characters): RSA-4096 gives 684, P-256 about 96. */
  maxSignatureChars: 1024,
  /** Largest verification cache allowed. */
  maxCacheSize: 1_000_000,
} as const;

/** Default cache size: above the 10,000 nodes one aggregator is designed for, so steady state never re-parses. */
export const DEFAULT_IDENTITY_CACHE_SIZE = 16_384;

/** The organisation (O) that marks a compute node's certificate. */
export const NODE_ORGANIZATION = 'arcnet-node';

/**
 * A node certificate's subject as node:crypto prints it (one RDN per line, in certificate order). The
 * character classes are node-cert's, and they contain nothing RFC 2253 escapes, so the DN Kafka's
 * principal mapping sees (CN=..,OU=..,O=arcnet-node) is the same certificate this accepts.
 */
const NODE_SUBJECT = /^O=arcnet-node\nOU=([A-Z0-9_-]{1,32})\nCN=([A-Za-z0-9._:@-]{1,64})$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** Separates this signature's purpose from any other use of the same key. */
const SIGNING_DOMAIN = Buffer.from('arcnet-node-message-v1', 'utf8');
const NULL_LENGTH = 0xffffffff;

/** What a node signs with: its certificate and private key, and who the certificate says it is. */
export interface NodeIdentity {
  readonly nodeId: string;
  readonly geozone: string;
  /** The certificate, DER, base64: the certificate header's value. */
  readonly certificateBase64: string;
  /** SHA-256 of the DER certificate, hex. */
  readonly fingerprint: string;
  readonly privateKey: KeyObject;
}

/** A Kafka message key or value as a producer gives it or a consumer receives it. */
export type MessageBytes = Buffer | string | null | undefined;

/** Kafka message headers (kafkajs's IHeaders fits). */
export type MessageHeaders = Readonly<Record<string, Buffer | string | readonly (Buffer | string)[] | undefined>> | undefined;

/** Why a message's identity was refused. */
export type IdentityRefusal =
  /** No certificate or signature header (or an empty one). */
  | 'missing'
  /** A header that is repeated, too long, not base64, or not a certificate. */
  | 'malformed'
  /** The certificate does not chain to the trusted node CA. */
  | 'untrusted'
  /** The certificate (or its CA) is not valid at this time. */
  | 'expired'
  /** A certificate from the CA that is not a node certificate (a CA, or another subject). */
  | 'not-a-node'
  /** The signature does not match this topic, key and value for the certificate's key. */
  | 'bad-signature'
  /** Signed by a node of another geozone than the message claims. */
  | 'geozone-mismatch'
  /** Signed by another node than the message claims. */
  | 'node-mismatch';

export type IdentityVerdict =
  | { readonly ok: true; readonly nodeId: string; readonly geozone: string; readonly fingerprint: string }
  | { readonly ok: false; readonly code: typeof ErrorCodes.PRODUCER_IDENTITY; readonly reason: IdentityRefusal; readonly message: string };

/**
 * Checks one consumed message. `claimedGeozone`: the geozone the message says it is of (telemetry: its
 * `geozone` field; a result: the geozone whose partition it was keyed to). `claimedNodeId`, when given:
 * the node the message says produced it (its `node-id`), which must be the certificate's CN.
 */
export interface InputIdentityVerifier {
  (headers: MessageHeaders, topic: string, key: MessageBytes, value: MessageBytes, claimedGeozone: string, claimedNodeId?: string): IdentityVerdict;
  /** How many certificates' checks are cached now (at most the cache size). */
  readonly cachedCertificates: number;
}

export interface InputIdentityVerifierOptions {
  /** PEM of the node CA (a bundle may hold several); node certificates must be issued directly by one of them. */
  readonly caPem: string;
  /** Certificates whose checks are remembered, by fingerprint, least recently used evicted first (default DEFAULT_IDENTITY_CACHE_SIZE). */
  readonly cacheSize?: number;
  /** The time validity is checked at (default the wall clock). */
  readonly nowMs?: () => number;
}

/** The bytes a node signs: a domain tag, then topic, key and value, each length-prefixed (null told apart from empty). */
export function signedMessageBytes(topic: string, key: MessageBytes, value: MessageBytes): Buffer {
  const parts = [SIGNING_DOMAIN, Buffer.from(topic, 'utf8'), toBytes(key), toBytes(value)];
  const length = parts.reduce((sum, p) => sum + 4 + (p?.length ?? 0), 0);
  const out = Buffer.allocUnsafe(length);
  let at = 0;
  for (const part of parts) {
    at = out.writeUInt32BE(part === undefined ? NULL_LENGTH : part.length, at);
    if (part !== undefined) at += part.copy(out, at);
  }
  return out;
}

function toBytes(bytes: MessageBytes): Buffer | undefined {
  if (bytes === null || bytes === undefined) return undefined;
  return typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
}

/** ECDSA and RSA sign a SHA-256 digest; Ed25519 and Ed448 take the message itself (no digest name). */
function digestFor(key: KeyObject): string | null | undefined {
  switch (key.asymmetricKeyType) {
    case 'ec':
    case 'rsa':
      return 'sha256';
    case 'ed25519':
    case 'ed448':
      return null;
    default:
      return undefined;
  }
}

/** Node id and geozone from a node certificate's subject; undefined for any other subject. */
function nodeSubject(certificate: X509Certificate): { nodeId: string; geozone: string } | undefined {
  const match = NODE_SUBJECT.exec(certificate.subject);
  if (match === null || certificate.ca) return undefined;
  return { geozone: match[1] as string, nodeId: match[2] as string };
}

/** A node's identity from its certificate and unencrypted private key (PEM); ARC_ERR_TLS_CONFIG when they are not a node's pair. */
export function nodeIdentityFromPem(certPem: string, keyPem: string): NodeIdentity {
  let certificate: X509Certificate;
  let privateKey: KeyObject;
  try {
    certificate = new X509Certificate(certPem);
    privateKey = createPrivateKey(keyPem);
  } catch (error) {
    throw new ArcError(ErrorCodes.TLS_CONFIG, `node certificate or key is not readable PEM (${error instanceof Error ? error.message : String(error)})`);
  }
  const subject = nodeSubject(certificate);
  if (subject === undefined) {
    throw new ArcError(
      ErrorCodes.TLS_CONFIG,
      `certificate subject ${JSON.stringify(certificate.subject)} is not a node's (O=${NODE_ORGANIZATION}, OU=<GEOZONE>, CN=<node-id>): make one with node scripts/kafka/kafka.mjs node-cert`,
    );
  }
  if (!certificate.checkPrivateKey(privateKey)) throw new ArcError(ErrorCodes.TLS_CONFIG, 'the node key is not the private key of the node certificate');
  if (digestFor(privateKey) === undefined) {
    throw new ArcError(ErrorCodes.TLS_CONFIG, `node keys must be EC, RSA, Ed25519 or Ed448, not ${privateKey.asymmetricKeyType ?? 'unknown'}`);
  }
  return {
    ...subject,
    certificateBase64: certificate.raw.toString('base64'),
    fingerprint: createHash('sha256').update(certificate.raw).digest('hex'),
    privateKey,
  };
}

/** nodeIdentityFromPem from files. */
export function loadNodeIdentity(files: { readonly certFile: string; readonly keyFile: string }): NodeIdentity {
  const read = (path: string): string => {
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      throw new ArcError(ErrorCodes.TLS_CONFIG, `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { path });
    }
  };
  return nodeIdentityFromPem(read(files.certFile), read(files.keyFile));
}

/** The headers a node adds to a message it produces to `topic` (merge them into the message's own). */
export function signNodeMessage(identity: NodeIdentity, topic: string, key: MessageBytes, value: MessageBytes): Record<string, string> {
  const signature = sign(digestFor(identity.privateKey) ?? null, signedMessageBytes(topic, key, value), identity.privateKey);
  return { [nodeIdentityHeaders.certificate]: identity.certificateBase64, [nodeIdentityHeaders.signature]: signature.toString('base64') };
}

/** What the certificate checks found, cached by fingerprint. */
interface CheckedCertificate {
  readonly nodeId: string;
  readonly geozone: string;
  readonly publicKey: KeyObject;
  readonly digest: string | null;
  /** The certificate's validity intersected with its CA's. */
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
}

/** The CA certificates in a PEM bundle; ARC_ERR_TLS_CONFIG when there is none that may sign certificates. */
function parseCaBundle(caPem: string): X509Certificate[] {
  const blocks = caPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const cas: X509Certificate[] = [];
  for (const block of blocks) {
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(block);
    } catch (error) {
      throw new ArcError(ErrorCodes.TLS_CONFIG, `the node CA bundle holds a certificate that does not parse (${error instanceof Error ? error.message : String(error)})`);
    }
    if (!certificate.ca) throw new ArcError(ErrorCodes.TLS_CONFIG, `the node CA bundle holds ${JSON.stringify(certificate.subject)}, which is not a CA certificate`);
    cas.push(certificate);
  }
  if (cas.length === 0) throw new ArcError(ErrorCodes.TLS_CONFIG, 'the node CA (--kafka-tls-ca) holds no PEM certificate');
  return cas;
}

/**
 * The region's check of a message on a shared input topic (see the file comment). Pure apart from the
 * clock and the bounded cache; never throws for a bad message (the verdict says why), only for a bad
 * CA or cache size at creation (ARC_ERR_TLS_CONFIG, ARC_ERR_USAGE).
 */
export function createInputIdentityVerifier(options: InputIdentityVerifierOptions): InputIdentityVerifier {
  const cas = parseCaBundle(options.caPem);
  const cacheSize = options.cacheSize ?? DEFAULT_IDENTITY_CACHE_SIZE;
  if (!Number.isInteger(cacheSize) || cacheSize < 1 || cacheSize > nodeIdentityLimits.maxCacheSize) {
    throw new ArcError(ErrorCodes.USAGE, `identity cache size must be a whole number from 1 to ${nodeIdentityLimits.maxCacheSize}, got ${cacheSize}`);
  }
  const nowMs = options.nowMs ?? (() => Date.now());
  // A Map iterates in insertion order: re-inserting on a hit makes its first key the least recently used.
  const cache = new Map<string, CheckedCertificate>();

  const refuse = (reason: IdentityRefusal, message: string): IdentityVerdict => ({ ok: false, code: ErrorCodes.PRODUCER_IDENTITY, reason, message });

  /** The certificate checks that do not depend on the message or the time; a refusal is not cached (a flood of bad certificates must not evict good ones). */
  const checkCertificate = (der: Buffer): CheckedCertificate | IdentityVerdict => {
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(der);
    } catch {
      return refuse('malformed', `${nodeIdentityHeaders.certificate} is not a DER certificate`);
    }
    const issuer = cas.find((ca) => certificate.checkIssued(ca) && certificate.verify(ca.publicKey));
    if (issuer === undefined) return refuse('untrusted', `the producer's certificate (${JSON.stringify(certificate.subject)}) is not signed by the trusted node CA`);
    const subject = nodeSubject(certificate);
    if (subject === undefined) {
      return refuse('not-a-node', `the producer's certificate ${JSON.stringify(certificate.subject)} is not a node certificate (O=${NODE_ORGANIZATION}, OU=<GEOZONE>, CN=<node-id>)`);
    }
    const digest = digestFor(certificate.publicKey);
    if (digest === undefined) return refuse('not-a-node', `the producer's certificate has a ${certificate.publicKey.asymmetricKeyType ?? 'unknown'} key, which node messages are not signed with`);
    return {
      ...subject,
      publicKey: certificate.publicKey,
      digest,
      notBeforeMs: Math.max(Date.parse(certificate.validFrom), Date.parse(issuer.validFrom)),
      notAfterMs: Math.min(Date.parse(certificate.validTo), Date.parse(issuer.validTo)),
    };
  };

  const verifyMessage = (headers: MessageHeaders, topic: string, key: MessageBytes, value: MessageBytes, claimedGeozone: string, claimedNodeId?: string): IdentityVerdict => {
    const certificateHeader = headerText(headers, nodeIdentityHeaders.certificate, nodeIdentityLimits.maxCertificateChars);
    const signatureHeader = headerText(headers, nodeIdentityHeaders.signature, nodeIdentityLimits.maxSignatureChars);
    for (const [name, header] of [[nodeIdentityHeaders.certificate, certificateHeader], [nodeIdentityHeaders.signature, signatureHeader]] as const) {
      if (header === undefined) return refuse('missing', `the message has no ${name} header: nodes sign what they produce (signNodeMessage)`);
      if (typeof header !== 'string') return refuse('malformed', `the ${name} header is ${header.problem}`);
    }
    const der = Buffer.from(certificateHeader as string, 'base64');
    const fingerprint = createHash('sha256').update(der).digest('hex');
    let checked = cache.get(fingerprint);
    if (checked === undefined) {
      const outcome = checkCertificate(der);
      if ('ok' in outcome) return outcome;
      checked = outcome;
      if (cache.size >= cacheSize) cache.delete(cache.keys().next().value as string);
    } else {
      cache.delete(fingerprint);
    }
    cache.set(fingerprint, checked);

    const now = nowMs();
    if (now < checked.notBeforeMs || now > checked.notAfterMs) {
      return refuse('expired', `the producer's certificate (node ${checked.nodeId}) is valid from ${new Date(checked.notBeforeMs).toISOString()} to ${new Date(checked.notAfterMs).toISOString()}, not now`);
    }
    const signature = Buffer.from(signatureHeader as string, 'base64');
    let valid = false;
    try {
      valid = verify(checked.digest, signedMessageBytes(topic, key, value), checked.publicKey, signature);
    } catch {
      valid = false;
    }
    if (!valid) return refuse('bad-signature', `the signature of node ${checked.nodeId} does not match this message on ${topic} (altered, or signed for another topic)`);
    if (checked.geozone !== claimedGeozone) {
      return refuse('geozone-mismatch', `node ${checked.nodeId} of geozone ${checked.geozone} produced a message of geozone ${claimedGeozone}`);
    }
    if (claimedNodeId !== undefined && checked.nodeId !== claimedNodeId) {
      return refuse('node-mismatch', `node ${checked.nodeId} produced a message that says it is from node ${claimedNodeId}`);
    }
    return { ok: true, nodeId: checked.nodeId, geozone: checked.geozone, fingerprint };
  };
  return Object.defineProperty(verifyMessage, 'cachedCertificates', { get: () => cache.size, enumerable: true }) as InputIdentityVerifier;
}

/** A header's value as text: undefined when absent or empty, a problem when repeated, too long or not base64. */
function headerText(headers: MessageHeaders, name: string, maxChars: number): string | { problem: string } | undefined {
  const raw = headers?.[name];
  if (raw === undefined) return undefined;
  if (Array.isArray(raw)) return { problem: 'repeated' };
  const text = typeof raw === 'string' ? raw : (raw as Buffer).length > maxChars ? undefined : (raw as Buffer).toString('latin1');
  if (text === undefined || text.length > maxChars) return { problem: `longer than ${maxChars} characters` };
  if (text === '') return undefined;
  if (!BASE64.test(text)) return { problem: 'not base64' };
  return text;
}
