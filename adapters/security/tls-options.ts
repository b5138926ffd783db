import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ServerOptions } from 'node:https';
import { TLSSocket, type ConnectionOptions } from 'node:tls';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';

/**
 * TLS for the region's HTTP API (fastify's `https` option) and its Kafka client.
 * The seed asks for TLS 1.3 on every link and mTLS between components, so both
 * sides refuse anything older than TLS 1.3, and client certificates can be
 * required. Every problem with the files is found here, at start-up, as
 * ARC_ERR_TLS_CONFIG naming the flag and file, instead of as a handshake
 * failure on the first connection.
 */

export const CLIENT_AUTH_MODES = ['required', 'optional', 'off'] as const;
/**
 * required: a client without a certificate signed by the CA is refused in the handshake.
 * optional: the certificate is asked for and checked, but a client without one
 *   (or with a bad one) still connects; the application must look at `clientIdentity(socket).authorized`.
 * off: no client certificates.
 */
export type ClientAuth = (typeof CLIENT_AUTH_MODES)[number];

export interface TlsServerFiles {
  /** PEM certificate chain (`--tls-cert`). */
  readonly certFile: string;
  /** PEM private key (`--tls-key`). */
  readonly keyFile: string;
  /** PEM CA bundle that client certificates must chain to (`--tls-ca`); needed unless clientAuth is off. */
  readonly caFile?: string | undefined;
  /** `--tls-client-auth` (default off). */
  readonly clientAuth?: ClientAuth | undefined;
}

/** Reads `--tls-client-auth`; ARC_ERR_USAGE for anything but required, optional or off. */
export function parseClientAuth(value: string | undefined): ClientAuth {
  if (value === undefined) return 'off';
  if ((CLIENT_AUTH_MODES as readonly string[]).includes(value)) return value as ClientAuth;
  throw new ArcError(ErrorCodes.USAGE, `--tls-client-auth takes required, optional or off, got '${value}'`);
}

function readPem(path: string, flag: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ArcError(ErrorCodes.TLS_CONFIG, `cannot read ${flag} file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { flag, path });
  }
  if (!text.includes('-----BEGIN ')) throw new ArcError(ErrorCodes.TLS_CONFIG, `${flag} file ${path} holds no PEM block`, { flag, path });
  return text;
}

/** Parses the certificate and key and checks that they belong together. */
function checkPair(cert: string, key: string, files: { certFile: string; keyFile: string; certFlag: string; keyFlag: string }): void {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch (error) {
    throw new ArcError(ErrorCodes.TLS_CONFIG, `${files.certFlag} file ${files.certFile} is not a PEM certificate (${errorMessage(error)})`, { path: files.certFile });
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    throw new ArcError(ErrorCodes.TLS_CONFIG, `${files.keyFlag} file ${files.keyFile} is not an unencrypted PEM private key (${errorMessage(error)})`, { path: files.keyFile });
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new ArcError(ErrorCodes.TLS_CONFIG, `${files.keyFlag} ${files.keyFile} is not the private key of ${files.certFlag} ${files.certFile}`, {
      certFile: files.certFile,
      keyFile: files.keyFile,
    });
  }
}

function checkCa(ca: string, path: string, flag: string): void {
  try {
    new X509Certificate(ca);
  } catch (error) {
    throw new ArcError(ErrorCodes.TLS_CONFIG, `${flag} file ${path} is not a PEM certificate (${errorMessage(error)})`, { path });
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `https.ServerOptions` for `Fastify({ https: httpsServerOptions(files) })`. */
export function httpsServerOptions(files: TlsServerFiles): ServerOptions {
  const clientAuth = files.clientAuth ?? 'off';
  const cert = readPem(files.certFile, '--tls-cert');
  const key = readPem(files.keyFile, '--tls-key');
  checkPair(cert, key, { certFile: files.certFile, keyFile: files.keyFile, certFlag: '--tls-cert', keyFlag: '--tls-key' });
  if (clientAuth !== 'off' && files.caFile === undefined) {
    throw new ArcError(ErrorCodes.TLS_CONFIG, `--tls-client-auth ${clientAuth} needs --tls-ca (the CA that signs client certificates)`);
  }
  const options: ServerOptions = { cert, key, minVersion: 'TLSv1.3' };
  if (files.caFile !== undefined) {
    options.ca = readPem(files.caFile, '--tls-ca');
    checkCa(options.ca, files.caFile, '--tls-ca');
  }
  if (clientAuth !== 'off') {
    options.requestCert = true;
    options.rejectUnauthorized = clientAuth === 'required';
  }
  return options;
}

export interface KafkaTlsFiles {
  /** PEM CA bundle the brokers' certificates chain to. */
  readonly caFile: string;
  /** Client certificate and key for mTLS to the brokers; both or neither. */
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  /** Name to check the broker certificate against (and send as SNI) when it differs from the broker host. */
  readonly servername?: string | undefined;
}

/** The `ssl` option of kafkajs's `new Kafka({ brokers, ssl })`: TLS 1.3, broker certificate always verified. */
export function kafkaTlsOptions(files: KafkaTlsFiles): ConnectionOptions {
  const ca = readPem(files.caFile, '--kafka-tls-ca');
  checkCa(ca, files.caFile, '--kafka-tls-ca');
  const options: ConnectionOptions = { ca, minVersion: 'TLSv1.3', rejectUnauthorized: true };
  if ((files.certFile === undefined) !== (files.keyFile === undefined)) {
    throw new ArcError(ErrorCodes.TLS_CONFIG, 'Kafka mTLS needs both --kafka-tls-cert and --kafka-tls-key, or neither');
  }
  if (files.certFile !== undefined && files.keyFile !== undefined) {
    options.cert = readPem(files.certFile, '--kafka-tls-cert');
    options.key = readPem(files.keyFile, '--kafka-tls-key');
    checkPair(options.cert, options.key, { certFile: files.certFile, keyFile: files.keyFile, certFlag: '--kafka-tls-cert', keyFlag: '--kafka-tls-key' });
  }
  if (files.servername !== undefined) options.servername = files.servername;
  return options;
}

export interface ClientIdentity {
  /** True when the client presented a certificate that chains to the configured CA. */
  readonly authorized: boolean;
  /** Subject CN of a verified client certificate; undefined without one (an unverified CN is not trusted). */
  readonly commonName: string | undefined;
}

/**
 * Who is on the other end of a TLS connection, from the client certificate:
 * pass `request.raw.socket` (fastify) or the upgrade request's socket (ws). For
 * logs and principal labels; authorization stays with API keys.
 */
export function clientIdentity(socket: unknown): ClientIdentity {
  if (!(socket instanceof TLSSocket) || !socket.authorized) return { authorized: false, commonName: undefined };
  const subject = socket.getPeerCertificate().subject as Record<string, string | string[] | undefined> | undefined;
  const cn = subject?.['CN'];
  return { authorized: true, commonName: Array.isArray(cn) ? cn[0] : cn };
}
