import test from 'ava';
import Fastify, { type FastifyInstance } from 'fastify';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { clientIdentity, httpsServerOptions, kafkaTlsOptions, parseClientAuth, type TlsServerFiles } from '../../adapters/security/tls-options.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { makeCertificates } from '../helpers/certificates.js';

const certs = makeCertificates();
test.after.always(() => certs.cleanup());

async function serve(files: TlsServerFiles): Promise<{ app: FastifyInstance; port: number }> {
  const app = Fastify({ https: httpsServerOptions(files) });
  app.get('/whoami', (req) => ({ ...clientIdentity(req.raw.socket), protocol: (req.raw.socket as TLSSocket).getProtocol() }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, port: (app.server.address() as AddressInfo).port };
}

interface ClientTls {
  readonly cert?: string;
  readonly key?: string;
  readonly maxVersion?: 'TLSv1.2' | 'TLSv1.3';
}

/** GET /whoami over HTTPS, trusting the test CA; resolves with the status and body, rejects on a refused connection. */
function get(port: number, tls: ClientTls = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/whoami', method: 'GET', ca: certs.pem.caCert, agent: false, ...tls }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const serverFiles = { certFile: certs.paths.serverCert, keyFile: certs.paths.serverKey };

test('a TLS 1.3 client gets through; a client capped at TLS 1.2 is refused in the handshake', async (t) => {
  const { app, port } = await serve(serverFiles);
  t.teardown(() => app.close());
  const ok = await get(port);
  t.is(ok.status, 200);
  t.is(ok.body['protocol'], 'TLSv1.3');
  t.deepEqual([ok.body['authorized'], ok.body['commonName']], [false, undefined], 'no client certificate, no identity');

  const old = await t.throwsAsync(get(port, { maxVersion: 'TLSv1.2' }));
  t.regex(old.message, /protocol version/i, 'refused by the server with a protocol_version alert');
});

test('with client auth required: no certificate and a foreign CA’s certificate are refused, the CA’s client gets in with its CN', async (t) => {
  const { app, port } = await serve({ ...serverFiles, caFile: certs.paths.caCert, clientAuth: 'required' });
  t.teardown(() => app.close());

  const bare = await t.throwsAsync(get(port), undefined, 'no client certificate');
  t.regex(bare.message, /certificate required/i);
  await t.throwsAsync(get(port, { cert: certs.pem.foreignClientCert, key: certs.pem.foreignClientKey }), undefined, 'certificate from an unrelated CA');

  const ok = await get(port, { cert: certs.pem.clientCert, key: certs.pem.clientKey });
  t.is(ok.status, 200);
  t.is(ok.body['authorized'], true);
  t.is(ok.body['commonName'], certs.clientCommonName);
});

test('with client auth optional: clients without a certificate connect, and only a verified one has an identity', async (t) => {
  const { app, port } = await serve({ ...serverFiles, caFile: certs.paths.caCert, clientAuth: 'optional' });
  t.teardown(() => app.close());
  t.like((await get(port)).body, { authorized: false });
  t.like((await get(port, { cert: certs.pem.foreignClientCert, key: certs.pem.foreignClientKey })).body, { authorized: false });
  t.like((await get(port, { cert: certs.pem.clientCert, key: certs.pem.clientKey })).body, { authorized: true, commonName: certs.clientCommonName });
});

test('the Kafka client options complete a real mutual TLS 1.3 handshake (node:tls)', async (t) => {
  const { app, port } = await serve({ ...serverFiles, caFile: certs.paths.caCert, clientAuth: 'required' });
  t.teardown(() => app.close());
  const ssl = kafkaTlsOptions({ caFile: certs.paths.caCert, certFile: certs.paths.clientCert, keyFile: certs.paths.clientKey, servername: 'localhost' });
  const { protocol, response } = await new Promise<{ protocol: string | null; response: string }>((resolve, reject) => {
    let response = '';
    const socket = connect({ ...ssl, host: '127.0.0.1', port }, () => {
      socket.write('GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (response += chunk));
    socket.on('end', () => resolve({ protocol: socket.getProtocol(), response }));
    socket.on('error', reject);
  });
  t.is(protocol, 'TLSv1.3');
  t.regex(response, /^HTTP\/1\.1 200/);
  t.true(response.includes(`"commonName":"${certs.clientCommonName}"`), 'the server verified the client certificate');
});

function tlsError(fn: () => unknown): ArcError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ArcError) return error;
    throw error;
  }
  throw new Error('expected an ArcError');
}

test('missing files, a mismatched pair, non-PEM files and client auth without a CA are ARC_ERR_TLS_CONFIG', (t) => {
  const missing = tlsError(() => httpsServerOptions({ certFile: `${certs.dir}/nope.crt`, keyFile: certs.paths.serverKey }));
  t.is(missing.code, ErrorCodes.TLS_CONFIG);
  t.regex(missing.message, /--tls-cert file .*nope\.crt: ENOENT/);

  const mismatch = tlsError(() => httpsServerOptions({ certFile: certs.paths.serverCert, keyFile: certs.paths.clientKey }));
  t.is(mismatch.code, ErrorCodes.TLS_CONFIG);
  t.regex(mismatch.message, /is not the private key of --tls-cert/);

  const notPem = tlsError(() => httpsServerOptions({ certFile: certs.paths.serverCert, keyFile: certs.paths.serverKey, caFile: `${certs.dir}/server.ext`, clientAuth: 'required' }));
  t.is(notPem.code, ErrorCodes.TLS_CONFIG);

  const noCa = tlsError(() => httpsServerOptions({ ...serverFiles, clientAuth: 'required' }));
  t.is(noCa.code, ErrorCodes.TLS_CONFIG);
  t.regex(noCa.message, /needs --tls-ca/);

  t.is(tlsError(() => parseClientAuth('sometimes')).code, ErrorCodes.USAGE);
  t.is(parseClientAuth(undefined), 'off');
});

test('kafkaTlsOptions: TLS 1.3, verified brokers, optional client pair checked', (t) => {
  const options = kafkaTlsOptions({ caFile: certs.paths.caCert, certFile: certs.paths.clientCert, keyFile: certs.paths.clientKey, servername: 'broker-1' });
  t.like(options, { ca: certs.pem.caCert, cert: certs.pem.clientCert, key: certs.pem.clientKey, minVersion: 'TLSv1.3', rejectUnauthorized: true, servername: 'broker-1' });
  t.false('cert' in kafkaTlsOptions({ caFile: certs.paths.caCert }));
  t.is(tlsError(() => kafkaTlsOptions({ caFile: certs.paths.caCert, certFile: certs.paths.clientCert })).code, ErrorCodes.TLS_CONFIG);
  t.is(tlsError(() => kafkaTlsOptions({ caFile: certs.paths.caCert, certFile: certs.paths.clientCert, keyFile: certs.paths.serverKey })).code, ErrorCodes.TLS_CONFIG);
});
