// Signed producer identity on the shared input topics: what a node signs (signNodeMessage) and what
// the region accepts (createInputIdentityVerifier), with real certificates made by openssl.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, sign, verify as verifyRaw, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createInputIdentityVerifier,
  loadNodeIdentity,
  nodeIdentityFromPem,
  nodeIdentityHeaders,
  nodeIdentityLimits,
  signedMessageBytes,
  signNodeMessage,
  type IdentityVerdict,
  type NodeIdentity,
} from '../../adapters/security/node-identity.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { tempDir } from '../helpers/fixtures.js';

const OPENSSL = '/usr/bin/openssl';
const { dir, cleanup } = tempDir('arcnet-node-identity-');
test.after.always(() => cleanup());

const openssl = (...args: string[]): void => {
  execFileSync(OPENSSL, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
};

function makeCa(name: string, commonName: string): void {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`,
    '-days', '2', '-subj', `/CN=${commonName}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
}

/** A leaf certificate signed by `ca`, subject as given (openssl -subj form), EC P-256 unless `keyType` says ed25519. */
function makeLeaf(name: string, ca: string, subject: string, keyType: 'ec' | 'ed25519' = 'ec'): { cert: string; key: string } {
  writeFileSync(join(dir, `${name}.ext`), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  const keyArgs = keyType === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'] : ['-newkey', 'ed25519'];
  openssl('req', ...keyArgs, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  return { cert: readFileSync(join(dir, `${name}.crt`), 'utf8'), key: readFileSync(join(dir, `${name}.key`), 'utf8') };
}

makeCa('ca', 'ArcNet node CA');
makeCa('foreign-ca', 'Some other CA');
const caPem = readFileSync(join(dir, 'ca.crt'), 'utf8');
const foreignCaPem = readFileSync(join(dir, 'foreign-ca.crt'), 'utf8');
const caiso = makeLeaf('caiso', 'ca', '/O=arcnet-node/OU=CAISO/CN=caiso-17');
const ercot = makeLeaf('ercot', 'ca', '/O=arcnet-node/OU=ERCOT/CN=ercot-3');
const caisoEd25519 = makeLeaf('caiso-ed', 'ca', '/O=arcnet-node/OU=CAISO/CN=caiso-ed');
const foreignCaiso = makeLeaf('foreign-caiso', 'foreign-ca', '/O=arcnet-node/OU=CAISO/CN=caiso-17');
const notANode = makeLeaf('region', 'ca', '/CN=arcnet-local-client');
const reordered = makeLeaf('reordered', 'ca', '/CN=caiso-9/OU=CAISO/O=arcnet-node');
const ed25519 = makeLeaf('ed', 'ca', '/O=arcnet-node/OU=CAISO/CN=caiso-ed25519', 'ed25519');

const caisoIdentity = nodeIdentityFromPem(caiso.cert, caiso.key);
const ercotIdentity = nodeIdentityFromPem(ercot.cert, ercot.key);

const TOPIC = 'arc.telemetry.node';
const value = Buffer.from(JSON.stringify({ 'node-id': 'caiso-17', geozone: 'CAISO', 'gpu-utilization': 0.4 }));

/** Headers as a kafkajs consumer hands them over: Buffers. */
function asConsumed(headers: Record<string, string>): Record<string, Buffer> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Buffer.from(v, 'utf8')]));
}

function refusal(verdict: IdentityVerdict): string {
  if (verdict.ok) return 'accepted';
  return verdict.reason;
}

test('node identity: the subject gives node id and geozone; the key must be the certificate\'s', (t) => {
  t.is(caisoIdentity.nodeId, 'caiso-17');
  t.is(caisoIdentity.geozone, 'CAISO');
  t.is(caisoIdentity.fingerprint, new X509Certificate(caiso.cert).fingerprint256.replaceAll(':', '').toLowerCase());
  const fromFiles = loadNodeIdentity({ certFile: join(dir, 'caiso.crt'), keyFile: join(dir, 'caiso.key') });
  t.is(fromFiles.certificateBase64, caisoIdentity.certificateBase64);
  const code = (fn: () => unknown): string | undefined => (t.throws(fn, { instanceOf: ArcError }) as ArcError | undefined)?.code;
  t.is(code(() => nodeIdentityFromPem(caiso.cert, ercot.key)), ErrorCodes.TLS_CONFIG);
  t.is(code(() => nodeIdentityFromPem(notANode.cert, notANode.key)), ErrorCodes.TLS_CONFIG);
  t.is(code(() => nodeIdentityFromPem(reordered.cert, reordered.key)), ErrorCodes.TLS_CONFIG, 'a DN Kafka would print differently is not a node certificate');
  t.is(code(() => loadNodeIdentity({ certFile: join(dir, 'missing.crt'), keyFile: join(dir, 'caiso.key') })), ErrorCodes.TLS_CONFIG);
});

test('a CAISO certificate signing a message that claims CAISO is accepted, also with the headers as Buffers', (t) => {
  const verify = createInputIdentityVerifier({ caPem });
  const headers = signNodeMessage(caisoIdentity, TOPIC, 'CAISO', value);
  t.deepEqual(Object.keys(headers).sort(), [nodeIdentityHeaders.signature, nodeIdentityHeaders.certificate].sort());
  t.deepEqual(verify(headers, TOPIC, 'CAISO', value, 'CAISO'), { ok: true, nodeId: 'caiso-17', geozone: 'CAISO', fingerprint: caisoIdentity.fingerprint });
  t.true(verify(asConsumed(headers), TOPIC, Buffer.from('CAISO'), value, 'CAISO', 'caiso-17').ok, 'consumed form, with the node id claimed too');
  t.true(verify(headers, TOPIC, 'CAISO', value.toString('utf8'), 'CAISO').ok, 'a string value signs the same as its UTF-8 bytes');
});

test('a CAISO certificate claiming ERCOT, or another node, is refused with ARC_ERR_PRODUCER_IDENTITY', (t) => {
  const verify = createInputIdentityVerifier({ caPem });
  const headers = signNodeMessage(caisoIdentity, TOPIC, 'ERCOT', value);
  const verdict = verify(headers, TOPIC, 'ERCOT', value, 'ERCOT');
  t.false(verdict.ok);
  if (!verdict.ok) {
    t.is(verdict.code, ErrorCodes.PRODUCER_IDENTITY);
    t.is(verdict.reason, 'geozone-mismatch');
    t.regex(verdict.message, /caiso-17 of geozone CAISO produced a message of geozone ERCOT/);
  }
  t.is(refusal(verify(signNodeMessage(caisoIdentity, TOPIC, 'CAISO', value), TOPIC, 'CAISO', value, 'CAISO', 'caiso-18')), 'node-mismatch');
  t.true(verify(signNodeMessage(ercotIdentity, TOPIC, 'ERCOT', value), TOPIC, 'ERCOT', value, 'ERCOT').ok, 'the ERCOT node may claim ERCOT');
});

test('a node certificate from a foreign CA is refused, though its subject is a CAISO node\'s', (t) => {
  const verify = createInputIdentityVerifier({ caPem });
  const foreign = nodeIdentityFromPem(foreignCaiso.cert, foreignCaiso.key);
  t.is(refusal(verify(signNodeMessage(foreign, TOPIC, 'CAISO', value), TOPIC, 'CAISO', value, 'CAISO')), 'untrusted');
  // Trusting both CAs (a bundle) accepts it.
  const both = createInputIdentityVerifier({ caPem: `${foreignCaPem}\n${caPem}` });
  t.true(both(signNodeMessage(foreign, TOPIC, 'CAISO', value), TOPIC, 'CAISO', value, 'CAISO').ok);
});

test('a tampered value, key or topic, or a signature from another key, is refused', (t) => {
  const verify = createInputIdentityVerifier({ caPem });
  const headers = signNodeMessage(caisoIdentity, TOPIC, 'CAISO', value);
  const tampered = Buffer.from(value);
  tampered[tampered.length - 2] = 0x39; // 0.4 -> 0.9
  t.is(refusal(verify(headers, TOPIC, 'CAISO', tampered, 'CAISO')), 'bad-signature');
  t.is(refusal(verify(headers, TOPIC, 'ERCOT', value, 'CAISO')), 'bad-signature', 'the key is signed');
  t.is(refusal(verify(headers, 'arc.result.inference', 'CAISO', value, 'CAISO')), 'bad-signature', 'the topic is signed');
  t.is(refusal(verify(headers, TOPIC, null, value, 'CAISO')), 'bad-signature', 'a null key is not the key');
  const nullKeyHeaders = signNodeMessage(caisoIdentity, TOPIC, null, value);
  t.true(verify(nullKeyHeaders, TOPIC, null, value, 'CAISO').ok);
  t.is(refusal(verify(nullKeyHeaders, TOPIC, '', value, 'CAISO')), 'bad-signature', 'null and empty are told apart');
  // The CAISO certificate with the ERCOT node's signature: a stolen certificate is no use without its key.
  const mixed = { ...headers, [nodeIdentityHeaders.signature]: signNodeMessage(ercotIdentity, TOPIC, 'CAISO', value)[nodeIdentityHeaders.signature] as string };
  t.is(refusal(verify(mixed, TOPIC, 'CAISO', value, 'CAISO')), 'bad-signature');
});

test('missing, empty, repeated, oversized or non-base64 headers are refused, never thrown', (t) => {
  const verify = createInputIdentityVerifier({ caPem });
  const headers = signNodeMessage(caisoIdentity, TOPIC, 'CAISO', value);
  const cert = headers[nodeIdentityHeaders.certificate] as string;
  const signature = headers[nodeIdentityHeaders.signature] as string;
  t.is(refusal(verify(undefined, TOPIC, 'CAISO', value, 'CAISO')), 'missing');
  t.is(refusal(verify({}, TOPIC, 'CAISO', value, 'CAISO')), 'missing');
  t.is(refusal(verify({ [nodeIdentityHeaders.certificate]: cert }, TOPIC, 'CAISO', value, 'CAISO')), 'missing');
  t.is(refusal(verify({ [nodeIdentityHeaders.signature]: signature }, TOPIC, 'CAISO', value, 'CAISO')), 'missing');
  t.is(refusal(verify({ ...headers, [nodeIdentityHeaders.signature]: '' }, TOPIC, 'CAISO', value, 'CAISO')), 'missing');
  t.is(refusal(verify({ ...headers, [nodeIdentityHeaders.certificate]: [cert, cert] }, TOPIC, 'CAISO', value, 'CAISO')), 'malformed');
  t.is(refusal(verify({ ...headers, [nodeIdentityHeaders.certificate]: 'A'.repeat(nodeIdentityLimits.maxCertificateChars + 4) }, TOPIC, 'CAISO', value, 'CAISO')), 'malformed');
  t.is(refusal(verify({ ...headers, [nodeIdentityHeaders.signature]: Buffer.alloc(nodeIdentityLimits.maxSignatureChars + 1, 0x41) }, TOPIC, 'CAISO', value, 'CAISO')), 'malformed');
  t.is(refusal(verify({ ...headers, [nodeIdentityHeaders.certificate]: 'not base64!' }, TOPIC, 'CAISO', value, 'CAISO')), 'malformed');
  t.is(refusal(verify({ ...headers, [nodeIdentityHeaders.certificate]: Buffer.from('a DER certificate it is not').toString('base64') }, TOPIC, 'CAISO', value, 'CAISO')), 'malformed');
  t.is(refusal(verify({ ...headers, [nodeIdentityHeaders.signature]: 'AAAA' }, TOPIC, 'CAISO', value, 'CAISO')), 'bad-signature', 'a signature that does not parse');
});

test('a certificate of the trusted CA that is not a node certificate is refused', (t) => {
  const verify = createInputIdentityVerifier({ caPem });
  const signedWith = (leaf: { cert: string; key: string }): Record<string, string> => ({
    [nodeIdentityHeaders.certificate]: new X509Certificate(leaf.cert).raw.toString('base64'),
    [nodeIdentityHeaders.signature]: sign('sha256', signedMessageBytes(TOPIC, 'CAISO', value), createPrivateKey(leaf.key)).toString('base64'),
  });
  t.is(refusal(verify(signedWith(notANode), TOPIC, 'CAISO', value, 'CAISO')), 'not-a-node', 'the region\'s own client certificate');
  t.is(refusal(verify(signedWith(reordered), TOPIC, 'CAISO', value, 'CAISO')), 'not-a-node', 'RDNs in another order');
  const caAsLeaf = { cert: caPem, key: readFileSync(join(dir, 'ca.key'), 'utf8') };
  t.is(refusal(verify(signedWith(caAsLeaf), TOPIC, 'CAISO', value, 'CAISO')), 'not-a-node', 'the CA itself (it issued itself)');
});

test('validity is checked at every message, also for a cached certificate', (t) => {
  let nowMs = Date.now();
  const verify = createInputIdentityVerifier({ caPem, nowMs: () => nowMs });
  const headers = signNodeMessage(caisoIdentity, TOPIC, 'CAISO', value);
  t.true(verify(headers, TOPIC, 'CAISO', value, 'CAISO').ok);
  nowMs += 3 * 24 * 3_600_000; // the test certificates are valid for two days
  t.is(refusal(verify(headers, TOPIC, 'CAISO', value, 'CAISO')), 'expired');
  nowMs = Date.parse(new X509Certificate(caiso.cert).validFrom) - 60_000;
  t.is(refusal(verify(headers, TOPIC, 'CAISO', value, 'CAISO')), 'expired', 'not valid yet');
});

test('Ed25519 node keys sign and verify too', (t) => {
  const verify = createInputIdentityVerifier({ caPem });
  const identity = nodeIdentityFromPem(ed25519.cert, ed25519.key);
  t.true(verify(signNodeMessage(identity, TOPIC, 'CAISO', value), TOPIC, 'CAISO', value, 'CAISO').ok);
  t.is(refusal(verify(signNodeMessage(identity, TOPIC, 'CAISO', value), TOPIC, 'CAISO', Buffer.from('{}'), 'CAISO')), 'bad-signature');
});

test('the certificate cache is bounded (least recently used evicted) and eviction changes no verdict', (t) => {
  const verify = createInputIdentityVerifier({ caPem, cacheSize: 2 });
  const identities: NodeIdentity[] = [caisoIdentity, nodeIdentityFromPem(caisoEd25519.cert, caisoEd25519.key), ercotIdentity];
  for (let round = 0; round < 3; round++) {
    for (const identity of identities) {
      const headers = signNodeMessage(identity, TOPIC, identity.geozone, value);
      t.true(verify(headers, TOPIC, identity.geozone, value, identity.geozone).ok);
      t.is(refusal(verify(headers, TOPIC, identity.geozone, value, identity.geozone === 'CAISO' ? 'ERCOT' : 'CAISO')), 'geozone-mismatch');
      t.true(verify.cachedCertificates <= 2);
    }
  }
  t.is(verify.cachedCertificates, 2);
  const code = (fn: () => unknown): string | undefined => (t.throws(fn, { instanceOf: ArcError }) as ArcError | undefined)?.code;
  t.is(code(() => createInputIdentityVerifier({ caPem, cacheSize: 0 })), ErrorCodes.USAGE);
  t.is(code(() => createInputIdentityVerifier({ caPem: 'no PEM here' })), ErrorCodes.TLS_CONFIG);
  t.is(code(() => createInputIdentityVerifier({ caPem: caiso.cert })), ErrorCodes.TLS_CONFIG, 'a leaf is not a CA');
});

test('cost per message (printed, not asserted): sign, verify with a cached certificate, verify a certificate first seen', (t) => {
  const iterations = 2_000;
  const headersList = Array.from({ length: iterations }, (_, i) => {
    const v = Buffer.from(`{"n":${i}}`);
    return { v, headers: signNodeMessage(caisoIdentity, TOPIC, 'CAISO', v) };
  });
  let start = performance.now();
  for (let i = 0; i < iterations; i++) signNodeMessage(caisoIdentity, TOPIC, 'CAISO', value);
  const signUs = ((performance.now() - start) * 1000) / iterations;
  const verify = createInputIdentityVerifier({ caPem });
  t.true(verify(headersList[0]!.headers, TOPIC, 'CAISO', headersList[0]!.v, 'CAISO').ok);
  start = performance.now();
  let accepted = 0;
  for (const { v, headers } of headersList) if (verify(headers, TOPIC, 'CAISO', v, 'CAISO').ok) accepted++;
  const cachedUs = ((performance.now() - start) * 1000) / iterations;
  // Two certificates taking turns in a cache of one: every message checks its certificate afresh.
  const cold = 400;
  const coldVerify = createInputIdentityVerifier({ caPem, cacheSize: 1 });
  const turns = [caisoIdentity, ercotIdentity].map((identity) => ({ identity, headers: signNodeMessage(identity, TOPIC, identity.geozone, value) }));
  start = performance.now();
  for (let i = 0; i < cold; i++) {
    const turn = turns[i % 2]!;
    if (coldVerify(turn.headers, TOPIC, turn.identity.geozone, value, turn.identity.geozone).ok) accepted++;
  }
  const coldUs = ((performance.now() - start) * 1000) / cold;
  // The raw cost underneath, in the same run: one node:crypto ECDSA P-256 verification of the same bytes.
  const publicKey = new X509Certificate(caiso.cert).publicKey;
  const bytes = headersList.map(({ v }) => signedMessageBytes(TOPIC, 'CAISO', v));
  const signatures = headersList.map(({ headers }) => Buffer.from(headers[nodeIdentityHeaders.signature] as string, 'base64'));
  start = performance.now();
  for (let i = 0; i < iterations; i++) if (verifyRaw('sha256', bytes[i]!, publicKey, signatures[i]!)) accepted++;
  const rawUs = ((performance.now() - start) * 1000) / iterations;
  t.is(accepted, 2 * iterations + cold);
  t.log(
    `node identity, P-256, per message: sign ${signUs.toFixed(1)} µs; verify ${cachedUs.toFixed(1)} µs with the certificate cached, ` +
      `${coldUs.toFixed(1)} µs for a certificate first seen; raw crypto.verify ${rawUs.toFixed(1)} µs (ratio ${(cachedUs / rawUs).toFixed(2)})`,
  );
});
