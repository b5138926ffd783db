import test from 'ava';
import { request } from 'node:https';
import WebSocket from 'ws';
import { makeCertificates } from '../helpers/certificates.js';
import { tempDir } from '../helpers/fixtures.js';
import { startLiveRegion } from '../helpers/live-region.js';

/** One HTTPS GET with the given TLS client settings: the status, or the error that stopped it. */
function get(url: string, tls: { ca: string; cert?: string; key?: string; maxVersion?: 'TLSv1.2' | 'TLSv1.3' }): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request(url, { ...tls, servername: 'localhost' }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    req.once('error', (error) => resolve(error.message));
    req.end();
  });
}

test('arcnet region with --tls-cert/--tls-key and --tls-client-auth required: HTTPS and WSS on TLS 1.3 with client certificates only', async (t) => {
  const certs = makeCertificates();
  const { dir, cleanup } = tempDir();
  const p = certs.paths;
  const region = await startLiveRegion(['--data', `${dir}/data`, '--geozones', 'CAISO', '--sim-nodes', '20', '--rate', '5', '--tls-cert', p.serverCert, '--tls-key', p.serverKey, '--tls-ca', p.caCert, '--tls-client-auth', 'required']);
  try {
    t.regex(region.origin, /^https:/);
    const url = `${region.origin}/v1/summary`;
    const client = { ca: certs.pem.caCert, cert: certs.pem.clientCert, key: certs.pem.clientKey };
    t.is(await get(url, client), 200, 'TLS 1.3 with the right client certificate');
    t.not(await get(url, { ca: certs.pem.caCert }), 200, 'no client certificate');
    t.not(await get(url, { ca: certs.pem.caCert, cert: certs.pem.foreignClientCert, key: certs.pem.foreignClientKey }), 200, 'a certificate from another CA');
    const old = await get(url, { ...client, maxVersion: 'TLSv1.2' });
    t.true(typeof old === 'string' && /version/i.test(old), `a TLS 1.2 client is refused: ${String(old)}`);

    const wss = new WebSocket(`${region.origin.replace(/^https/, 'wss')}/telemetry`, client);
    const first = await new Promise<Record<string, unknown>>((resolve, reject) => {
      wss.once('message', (data: Buffer) => resolve(JSON.parse(data.toString()) as Record<string, unknown>));
      wss.once('error', reject);
    });
    t.is(first['type'], 'subscribed', 'the console answers over WSS');
    wss.terminate();
  } finally {
    await region.stop();
    cleanup();
    certs.cleanup();
  }
});
