// A CDS client the project did not write: @medplum/core's buildCdsRequest reads the service's
// discovery prefetch templates, resolves them against the FHIR server with MedplumClient, and the
// request is posted to the service as an EHR would.
//
//   node cds_client.mjs <fhirBase> <serviceBase> <hook> <contextJson>
// Prints {"status": <http status>, "body": <response JSON>, "prefetchKeys": [...]} on stdout.

if (typeof globalThis.WebSocket === 'undefined') {
  globalThis.WebSocket = class WebSocket {
    constructor() {
      throw new Error('WebSocket is not available in the test CDS client');
    }
  };
}
const { ClientStorage, MedplumClient, MemoryStorage, buildCdsRequest } = await import('@medplum/core');

const [fhirBase, serviceBase, hook, contextJson] = process.argv.slice(2);
const medplum = new MedplumClient({
  baseUrl: `${fhirBase}/`,
  fhirUrlPath: `${fhirBase}/`,
  storage: new ClientStorage(new MemoryStorage()),
  fetch: globalThis.fetch,
});
const discovery = await (await fetch(`${serviceBase}/cds-services`)).json();
const service = discovery.services.find((s) => s.hook === hook);
const user = { resourceType: 'Practitioner', id: 'example' };
const request = await buildCdsRequest(medplum, user, service, JSON.parse(contextJson));
// gunicorn closes an idle keep-alive connection after 2 s: when resolving the prefetch took
// longer (a busy machine), the POST may go out on the discovery call's connection as it closes.
// A browser sends such a request again on a new connection; undici's fetch does not, so this does.
async function post() {
  return fetch(`${serviceBase}/cds-services/${service.id}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(request),
  });
}
let response;
try {
  response = await post();
} catch (error) {
  if (error?.cause?.code !== 'UND_ERR_SOCKET') throw error;
  response = await post();
}
process.stdout.write(
  JSON.stringify({
    status: response.status,
    body: await response.json(),
    prefetchKeys: Object.keys(request.prefetch ?? {}),
  }),
);
