// Calls to the similar-users API from the page: the key kept for this tab is sent as X-API-Key,
// and every failure, the network's included, becomes a Problem with a detail to show.

export const API_KEY_HEADER = "X-API-Key";
const KEY_STORAGE = "similar-users.api-key";
const PROBLEM_TYPE_PREFIX = "urn:similar-users:problem:";
// What a header value can carry unchanged, as the server checks it.
const SENDABLE_KEY = /^[\x21-\x7e]+$/;

export class Problem extends Error {
  constructor(status, body) {
    const detail = typeof body?.detail === "string" ? body.detail : "";
    super(detail || `The server answered ${status}.`);
    this.name = "Problem";
    this.status = status;
    this.type = typeof body?.type === "string" ? body.type : "";
    this.title = typeof body?.title === "string" ? body.title : "";
    this.detail = this.message;
    this.invalidParams = Array.isArray(body?.invalid_params) ? body.invalid_params : [];
  }

  is(slug) {
    return this.type === PROBLEM_TYPE_PREFIX + slug;
  }
}

// Where the key is kept when the browser refuses session storage (e.g. a privacy setting): the
// page, until it is closed or reloaded.
let unstoredKey = "";

export function storedKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) ?? unstoredKey;
  } catch {
    return unstoredKey;
  }
}

export function isSendableKey(key) {
  return SENDABLE_KEY.test(key);
}

// Keep the key for this tab; return whether session storage kept it (else only this page does).
export function storeKey(key) {
  unstoredKey = key;
  try {
    if (key) {
      sessionStorage.setItem(KEY_STORAGE, key);
    } else {
      sessionStorage.removeItem(KEY_STORAGE);
    }
    return true;
  } catch {
    return false;
  }
}

// Handles are integers up to 2^63 - 1: one beyond what a JavaScript number holds exactly keeps
// the digits the server sent (where the browser gives the reviver the source text).
function revive(key, value, context) {
  if (key === "user_handle" && typeof value === "number" && !Number.isSafeInteger(value)) {
    return context?.source ?? value;
  }
  return value;
}

const UNREACHABLE = {
  title: "Server unreachable",
  detail: "The server could not be reached: check that it runs and that this device is online, then try again.",
};

// Return the JSON answer of a GET (no body) or POST (a JSON body) to `path`, relative to the page.
export async function call(path, { body, signal } = {}) {
  const headers = { Accept: "application/json, application/problem+json" };
  const key = storedKey();
  if (key) {
    headers[API_KEY_HEADER] = key;
  }
  const init = { method: "GET", headers, signal, cache: "no-store", credentials: "same-origin" };
  if (body !== undefined) {
    init.method = "POST";
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  let text;
  try {
    response = await fetch(path, init);
    text = await response.text();
  } catch (error) {
    if (error?.name === "AbortError") {
      throw error;
    }
    throw new Problem(0, UNREACHABLE);
  }
  let answer = null;
  try {
    answer = JSON.parse(text, revive);
  } catch {
    answer = null;
  }
  if (!response.ok) {
    const fallback = {
      title: response.statusText || "Error",
      detail: `The server answered ${response.status} ${response.statusText} without saying why.`,
    };
    throw new Problem(response.status, answer && typeof answer === "object" ? answer : fallback);
  }
  if (answer === null || typeof answer !== "object") {
    throw new Problem(response.status, { title: "Unreadable answer", detail: "The server's answer was not the JSON expected." });
  }
  return answer;
}

// Return "?a=1&b=2" of the values that are set (empty strings and nulls left out).
export function query(values) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(values)) {
    if (value !== undefined && value !== null && value !== "") {
      params.append(name, String(value));
    }
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}
