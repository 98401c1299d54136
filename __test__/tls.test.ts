// TLS for connection strings, against a PostgreSQL of its own that accepts TLS
// connections only, with a certificate this test makes (a CA of its own, a server
// certificate for "localhost" only, and an unrelated CA as the wrong root).
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import forge from "node-forge";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startThrowaway } from "../scripts/throwaway-postgres.mjs";
import { PostgresConversationStore } from "../index.js";
import { ddl, rejection } from "./helpers.js";

interface Issued {
  key: forge.pki.rsa.PrivateKey;
  cert: forge.pki.Certificate;
  keyPem: string;
  certPem: string;
}

function issue(subject: string, issuer: Issued | null, server: boolean): Issued {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const key = forge.pki.privateKeyFromPem(privateKey.export({ type: "pkcs1", format: "pem" }).toString());
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: "spki", format: "pem" }).toString());
  cert.serialNumber = `01${randomBytes(8).toString("hex")}`;
  cert.validity.notBefore = new Date(Date.now() - 24 * 3600 * 1000);
  cert.validity.notAfter = new Date(Date.now() + 30 * 24 * 3600 * 1000);
  cert.setSubject([{ name: "commonName", value: subject }]);
  cert.setIssuer(issuer ? issuer.cert.subject.attributes : [{ name: "commonName", value: subject }]);
  cert.setExtensions(
    server
      ? [
          { name: "basicConstraints", cA: false },
          { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
          { name: "extKeyUsage", serverAuth: true },
          { name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }] },
        ]
      : [
          { name: "basicConstraints", cA: true, critical: true },
          { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
        ],
  );
  cert.sign(issuer ? issuer.key : key, forge.md.sha256.create());
  return { key, cert, keyPem: forge.pki.privateKeyToPem(key), certPem: forge.pki.certificateToPem(cert) };
}

let server: { url: string; stop(): Promise<void> };
let dir: string;
let port: string;
let caFile: string;
let otherCaFile: string;

beforeAll(async () => {
  const ca = issue("aibind test CA", null, false);
  const other = issue("some other CA", null, false);
  const cert = issue("localhost", ca, true);
  dir = mkdtempSync(join(tmpdir(), "aibind-tls-"));
  caFile = join(dir, "ca.pem");
  otherCaFile = join(dir, "other-ca.pem");
  writeFileSync(caFile, ca.certPem);
  writeFileSync(otherCaFile, other.certPem);
  server = await startThrowaway({
    settings: { ssl: "on", ssl_cert_file: "server.crt", ssl_key_file: "server.key" },
    files: { "server.crt": cert.certPem, "server.key": cert.keyPem },
    hba: "hostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
  });
  port = new URL(server.url).port;
  const admin = new pg.Client({ connectionString: server.url, ssl: { rejectUnauthorized: false } });
  await admin.connect();
  await admin.query(ddl({}));
  await admin.end();
}, 120_000);

afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Saves and loads through a store on `url`; resolves what it loaded. */
async function roundTrip(url: string) {
  const store = new PostgresConversationStore(url);
  try {
    const id = `tls-${randomBytes(4).toString("hex")}`;
    await store.saveJSON(id, '{"over":"tls"}');
    return await store.loadJSON(id);
  } finally {
    await store.close();
  }
}

const base = () => `postgres://postgres@127.0.0.1:${port}/aibind_test`;
const named = () => `postgres://postgres@localhost:${port}/aibind_test?hostaddr=127.0.0.1`;

describe("TLS (the server accepts TLS connections only)", () => {
  it("connects with sslmode=require and prefer; without sslmode, a loopback server is reached without TLS", async () => {
    expect(await roundTrip(`${base()}?sslmode=require`)).toBe('{"over":"tls"}');
    expect(await roundTrip(`${base()}?sslmode=prefer`)).toBe('{"over":"tls"}');
    // libpq would default to prefer; on loopback this package, like pg, does not encrypt.
    const err = await rejection(roundTrip(base()));
    expect(err.code).toBe("CONNECTION_ERROR");
    expect(err.message).toMatch(/no encryption/);
  });

  it("connects with verify-full when sslrootcert is the server's CA and the host name matches", async () => {
    expect(await roundTrip(`${named()}&sslmode=verify-full&sslrootcert=${encodeURIComponent(caFile)}`)).toBe('{"over":"tls"}');
    // The same in key=value form.
    expect(
      await roundTrip(`host=localhost hostaddr=127.0.0.1 port=${port} user=postgres dbname=aibind_test sslmode=verify-full sslrootcert='${caFile}'`),
    ).toBe('{"over":"tls"}');
  });

  it("verify-ca checks the chain but not the host name; verify-full refuses the wrong name", async () => {
    // The certificate names "localhost" only; 127.0.0.1 is not in it.
    expect(await roundTrip(`${base()}?sslmode=verify-ca&sslrootcert=${encodeURIComponent(caFile)}`)).toBe('{"over":"tls"}');
    const err = await rejection(roundTrip(`${base()}?sslmode=verify-full&sslrootcert=${encodeURIComponent(caFile)}`));
    expect(err.code).toBe("CONNECTION_ERROR");
    expect(err.message).toMatch(/not valid for name/i);
    expect(err.message).toMatch(/sslrootcert/);
  });

  it("refuses a server whose certificate does not chain to sslrootcert", async () => {
    for (const mode of ["verify-full", "verify-ca", "require"]) {
      const err = await rejection(roundTrip(`${named()}&sslmode=${mode}&sslrootcert=${encodeURIComponent(otherCaFile)}`));
      expect(err.code, mode).toBe("CONNECTION_ERROR");
      expect(err.message, mode).toMatch(/UnknownIssuer|unknown issuer/i);
    }
  });

  it("verify-full without sslrootcert uses the public roots, which this test CA is not among", async () => {
    const err = await rejection(roundTrip(`${named()}&sslmode=verify-full`));
    expect(err.code).toBe("CONNECTION_ERROR");
    expect(err.message).toMatch(/UnknownIssuer|unknown issuer/i);
  });

  it("fails clearly with sslmode=disable against a server that requires TLS", async () => {
    const err = await rejection(roundTrip(`${base()}?sslmode=disable`));
    expect(err.code).toBe("CONNECTION_ERROR");
    expect(err.sqlState).toBe("28000");
    expect(err.message).toMatch(/pg_hba\.conf/);
  });

  it("refuses at construction an unreadable sslrootcert, an unknown sslmode and client certificates", () => {
    const cases: Array<[string, RegExp]> = [
      [`${base()}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem`, /\/nonexistent\/ca\.pem/],
      [`${base()}?sslmode=maybe`, /sslmode=maybe/],
      [`${base()}?sslcert=/c.pem&sslkey=/k.pem`, /sslcert/],
    ];
    for (const [url, message] of cases) {
      expect(() => new PostgresConversationStore(url)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT", message: expect.stringMatching(message) }));
    }
  });
});
