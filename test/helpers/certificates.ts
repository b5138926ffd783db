import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './fixtures.js';

/**
 * Throw-away certificates made with the system openssl (P-256 keys, valid two
 * days): a CA, a server certificate for 127.0.0.1 and localhost, a client
 * certificate from that CA, and an unrelated CA with its own client, to show
 * that a certificate from elsewhere is refused.
 */

const OPENSSL = '/usr/bin/openssl';

export interface CertificateFiles {
  readonly caCert: string;
  readonly caKey: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  readonly foreignCaCert: string;
  readonly foreignClientCert: string;
  readonly foreignClientKey: string;
}

export interface TestCertificates {
  readonly dir: string;
  /** Paths of the PEM files. */
  readonly paths: CertificateFiles;
  /** The same files' contents. */
  readonly pem: CertificateFiles;
  /** The subject CN of the client certificate (the trusted one). */
  readonly clientCommonName: string;
  readonly cleanup: () => void;
}

function openssl(dir: string, ...args: string[]): void {
  execFileSync(OPENSSL, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeCa(dir: string, name: string, commonName: string): void {
  openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${commonName}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
}

function makeLeaf(dir: string, name: string, ca: string, commonName: string, extensions: string): void {
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl(dir, 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${commonName}`);
  openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
}

export function makeCertificates(): TestCertificates {
  const { dir, cleanup } = tempDir('arcnet-certs-');
  try {
    makeCa(dir, 'ca', 'ArcNet Test CA');
    makeLeaf(dir, 'server', 'ca', 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
    makeLeaf(dir, 'client', 'ca', 'console-operator', 'extendedKeyUsage=clientAuth\n');
    makeCa(dir, 'foreign-ca', 'Unrelated CA');
    makeLeaf(dir, 'foreign-client', 'foreign-ca', 'console-operator', 'extendedKeyUsage=clientAuth\n');
  } catch (error) {
    cleanup();
    throw error;
  }
  const paths: CertificateFiles = {
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.crt'),
    clientKey: join(dir, 'client.key'),
    foreignCaCert: join(dir, 'foreign-ca.crt'),
    foreignClientCert: join(dir, 'foreign-client.crt'),
    foreignClientKey: join(dir, 'foreign-client.key'),
  };
  const pem = Object.fromEntries(Object.entries(paths).map(([name, path]: [string, string]) => [name, readFileSync(path, 'utf8')])) as unknown as CertificateFiles;
  return { dir, paths, pem, clientCommonName: 'console-operator', cleanup };
}
