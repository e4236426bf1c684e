// The explorer page: four views over the similar-users API, their state kept in the URL.
//
// Each submit, view change or history step is an "operation": it cancels the one still running,
// clears the message, sets body[data-state] to "loading", and ends it "ready" or, when a problem
// is shown, "error" (so that a test can wait on the state rather than on time).

import { Problem, call, isSendableKey, query, storeKey, storedKey } from "./api.js";
import { draw } from "./plot.js";
import * as render from "./render.js";

const VIEWS = ["lookup", "profile", "compare", "models"];
const TITLES = {
  lookup: "Look up a user",
  profile: "A newcomer's profile",
  compare: "Compare two models",
  models: "Models",
};
const SITE = "Similar users explorer";
// The profile's kinds of names: the API's field, the URL's parameter, the catalogue's kind.
const NAMED = {
  interests: { param: "interest", input: "profile-interest", add: "profile-interest-add", list: "profile-interests", noun: "interest" },
  courses: { param: "course", input: "profile-course", add: "profile-course-add", list: "profile-courses", noun: "course" },
};
const SUGGEST_DELAY_MS = 150;
const SUGGEST_LIMIT = 10;
const MAX_NAME_LENGTH = 200;

const $ = (id) => document.getElementById(id);
const modelSelects = () => ["lookup-model", "profile-model", "compare-model-a", "compare-model-b"].map($);

// -- state in the URL --------------------------------------------------------------------------

function emptyState(view) {
  return { view, user_handle: "", model_handle: "", top_n: "", mutual_only: false, compare: "", interests: [], courses: [], assessments: [] };
}

function parseAssessment(text) {
  const at = text.lastIndexOf(":"); // a tag may hold a colon, a score never does
  if (at <= 0) {
    return null;
  }
  return { tag: text.slice(0, at).trim(), score: text.slice(at + 1).trim() };
}

function stateOf(search) {
  const params = new URLSearchParams(search);
  let view = params.get("view");
  if (!VIEWS.includes(view)) {
    if (params.has("compare")) {
      view = "compare";
    } else if (params.has("interest") || params.has("course") || params.has("assessment")) {
      view = "profile";
    } else {
      view = "lookup";
    }
  }
  const state = emptyState(view);
  state.user_handle = (params.get("user_handle") ?? "").trim();
  state.model_handle = params.get("model_handle") ?? "";
  state.top_n = params.get("top_n") ?? "";
  state.mutual_only = params.get("mutual_only") === "1";
  state.compare = params.get("compare") ?? "";
  state.interests = params.getAll("interest").filter(Boolean);
  state.courses = params.getAll("course").filter(Boolean);
  state.assessments = params.getAll("assessment").map(parseAssessment).filter(Boolean);
  return state;
}

function urlOf(state) {
  const params = new URLSearchParams({ view: state.view });
  const set = (name, value) => value && params.append(name, value);
  if (state.view === "lookup" || state.view === "compare") {
    set("user_handle", state.user_handle);
    set("model_handle", state.model_handle);
    if (state.view === "compare") {
      params.append("compare", state.compare); // present even when empty: it names the view
    }
    set("top_n", state.top_n);
    set("mutual_only", state.mutual_only ? "1" : "");
  } else if (state.view === "profile") {
    state.interests.forEach((name) => params.append("interest", name));
    state.courses.forEach((name) => params.append("course", name));
    state.assessments.forEach(({ tag, score }) => params.append("assessment", `${tag}:${score}`));
    set("model_handle", state.model_handle);
    set("top_n", state.top_n);
  }
  return `?${params}`;
}

function asks(state) {
  if (state.view === "profile") {
    return state.interests.length + state.courses.length + state.assessments.length > 0;
  }
  return state.view === "models" || state.user_handle !== "";
}

// The last state each view ran: where its tab leads back to.
const remembered = {};

function remember(state) {
  remembered[state.view] = state;
  const link = document.querySelector(`nav a[data-view="${state.view}"]`);
  if (link) {
    link.href = urlOf(state);
  }
}

function pushUrl(state) {
  const url = urlOf(state);
  if (url === location.search) {
    history.replaceState(null, "", url);
  } else {
    history.pushState(null, "", url);
  }
}

// -- operations --------------------------------------------------------------------------------

let running = null; // the AbortController of the operation under way

function setState(state) {
  document.body.dataset.state = state;
  $("main").setAttribute("aria-busy", String(state === "loading"));
}

function clearMessage() {
  const region = $("message");
  region.replaceChildren();
  region.hidden = true;
}

// Ask for the key next to its field; move the focus there unless the person is typing elsewhere.
function askForKey(focus) {
  const input = $("api-key");
  const status = $("api-key-status");
  status.textContent = storedKey()
    ? "This server refused the saved API key: enter the right one and press Save key."
    : "This server needs an API key: enter it here and press Save key.";
  status.classList.add("wanted");
  input.setAttribute("aria-invalid", "true");
  if (focus) {
    input.focus();
  }
}

function keyAccepted() {
  const input = $("api-key");
  if (input.getAttribute("aria-invalid") === "true") {
    input.removeAttribute("aria-invalid");
    $("api-key-status").classList.remove("wanted");
    $("api-key-status").textContent = storedKey() ? "Key accepted." : "";
  }
}

const KEY_PROBLEM = (error) =>
  new Problem(401, {
    title: "API key needed",
    detail: storedKey()
      ? `This server refused the API key saved in this tab: enter the right one in the API key field and press Save key. (${error.detail})`
      : `This server needs an API key: enter it in the API key field and press Save key. (${error.detail})`,
  });

// Show problems ({error, lead} each) in the alert region; a 401 becomes the prompt for the key.
function showProblems(items, { focusKey = true } = {}) {
  const unauthorized = items.find(({ error }) => error.status === 401);
  const shown = unauthorized ? [{ error: KEY_PROBLEM(unauthorized.error) }] : items;
  const region = $("message");
  region.replaceChildren(...shown.flatMap(({ error, lead }) => render.problem(error, lead)));
  region.hidden = false;
  if (unauthorized) {
    askForKey(focusKey);
  }
}

class Problems extends Error {
  constructor(items) {
    super(items.map(({ error }) => error.message).join(" "));
    this.items = items;
  }
}

function start(work) {
  running?.abort();
  const controller = new AbortController();
  running = controller;
  clearMessage();
  setState("loading");
  const finish = (state) => {
    if (running === controller) {
      running = null;
      setState(state);
    }
  };
  return work(controller.signal).then(
    () => {
      if (running === controller) {
        keyAccepted();
      }
      finish("ready");
    },
    (error) => {
      if (controller.signal.aborted || running !== controller) {
        return;
      }
      if (error instanceof Problems) {
        showProblems(error.items);
      } else if (error instanceof Problem) {
        showProblems([{ error }]);
      } else {
        showProblems([{ error: new Problem(0, { title: "Page error", detail: String(error?.message ?? error) }) }]);
        console.error(error);
      }
      finish("error");
    },
  );
}

function idle() {
  running?.abort();
  running = null;
  clearMessage();
  setState("ready");
}

// -- models ------------------------------------------------------------------------------------

function setSelect(select, value) {
  if (![...select.options].some((option) => option.value === value)) {
    select.append(new Option(value, value));
  }
  select.value = value;
}

function fillModelSelects(answer) {
  const label = answer.default_model ? `Server default (${answer.default_model})` : "Server default";
  for (const select of modelSelects()) {
    const value = select.value;
    select.replaceChildren(new Option(label, ""), ...answer.models.map((run) => new Option(run.model_handle, run.model_handle)));
    setSelect(select, value);
  }
}

async function loadModels(signal) {
  const answer = await call("models", { signal });
  fillModelSelects(answer);
  render.models($("models-table"), $("models-default"), answer);
  draw($("models-plot"), answer);
}

// -- neighbours --------------------------------------------------------------------------------

// Return a user's answer with explanations, or without them (and why) when the run's artifact
// cannot give them: the stored lists still answer.
async function explainedLookup(state, modelHandle, signal) {
  const path = `similar-users/${encodeURIComponent(state.user_handle)}`;
  const values = { model_handle: modelHandle, top_n: state.top_n, mutual_only: state.mutual_only ? "true" : "" };
  try {
    return { answer: await call(path + query({ ...values, explain: "true" }), { signal }) };
  } catch (error) {
    if (error instanceof Problem && error.is("artifact-unavailable")) {
      return { answer: await call(path + query(values), { signal }), unexplained: error };
    }
    throw error;
  }
}

function unexplainedNote(unexplained) {
  return unexplained ? `Without the shared evidence: ${unexplained.detail}` : "";
}

async function runLookup(state, signal) {
  const table = $("lookup-results");
  render.clearTable(table);
  $("lookup-note").textContent = "";
  const { answer, unexplained } = await explainedLookup(state, state.model_handle, signal);
  render.neighbours(table, answer, `user ${state.user_handle}`);
  $("lookup-note").textContent = unexplainedNote(unexplained);
}

async function runCompare(state, signal) {
  const tables = [$("compare-a"), $("compare-b")];
  tables.forEach(render.clearTable);
  $("compare-overlap").textContent = "";
  $("compare-note").textContent = "";
  const models = [state.model_handle, state.compare];
  const settled = await Promise.allSettled(models.map((model) => explainedLookup(state, model, signal)));
  if (signal.aborted) {
    throw new DOMException("replaced by a newer operation", "AbortError");
  }
  const handles = settled.map((outcome) =>
    outcome.status === "fulfilled" ? new Set(outcome.value.answer.data.similar_users.map((n) => String(n.user_handle))) : null,
  );
  const both = handles[0] && handles[1] ? new Set([...handles[0]].filter((handle) => handles[1].has(handle))) : new Set();
  const notes = [];
  settled.forEach((outcome, at) => {
    if (outcome.status === "fulfilled") {
      render.neighbours(tables[at], outcome.value.answer, `user ${state.user_handle}`, both);
      const note = unexplainedNote(outcome.value.unexplained);
      if (note) {
        notes.push(note);
      }
    }
  });
  $("compare-note").textContent = [...new Set(notes)].join(" ");
  if (handles[0] && handles[1]) {
    const [a, b] = handles.map((set) => set.size);
    const lengths = a === b ? "" : ` (lists of ${a} and ${b})`;
    $("compare-overlap").textContent = `${both.size} of ${Math.min(a, b)} shared${lengths}`;
  }
  const failed = settled
    .map((outcome, at) => ({ outcome, lead: `${at === 0 ? "First" : "Second"} model (${models[at] || "server default"})` }))
    .filter(({ outcome }) => outcome.status === "rejected");
  const aborted = failed.find(({ outcome }) => outcome.reason?.name === "AbortError");
  if (aborted) {
    throw aborted.outcome.reason;
  }
  const items = failed.map(({ outcome, lead }) => ({
    error: outcome.reason instanceof Problem ? outcome.reason : new Problem(0, { detail: String(outcome.reason) }),
    lead,
  }));
  if (items.length === 2 && items[0].error.detail === items[1].error.detail) {
    throw items[0].error; // the same problem on both sides (a store down) is said once
  }
  if (items.length) {
    throw new Problems(items);
  }
}

// -- a newcomer's profile ----------------------------------------------------------------------

const chosen = { interests: [], courses: [], assessments: [] };

function chip(text, label, onRemove, data) {
  const remove = render.element("button", { className: "remove", attributes: { type: "button", "aria-label": `Remove ${label}`, title: `Remove ${label}` } });
  remove.addEventListener("click", onRemove);
  return render.element("li", { attributes: data }, [render.element("span", { className: "name", text }), remove]);
}

function drawChips() {
  for (const [kind, named] of Object.entries(NAMED)) {
    $(named.list).replaceChildren(
      ...chosen[kind].map((name, at) =>
        chip(name, `${named.noun} ${name}`, () => {
          chosen[kind].splice(at, 1);
          drawChips();
          $(named.input).focus();
        }, { "data-name": name }),
      ),
    );
  }
  $("profile-assessments").replaceChildren(
    ...chosen.assessments.map(({ tag, score }, at) =>
      chip(`${tag}: ${score}`, `assessment ${tag}`, () => {
        chosen.assessments.splice(at, 1);
        drawChips();
        $("profile-assessment-tag").focus();
      }, { "data-tag": tag, "data-score": score }),
    ),
  );
}

function refuse(input, text) {
  input.setCustomValidity(text);
  input.reportValidity();
  input.addEventListener("input", () => input.setCustomValidity(""), { once: true });
  return false;
}

// Add the name typed in a kind's field as a chip; return false when the field says why not.
function addName(kind) {
  const input = $(NAMED[kind].input);
  const name = input.value.trim();
  if (!name) {
    return refuse(input, `Type ${NAMED[kind].noun === "interest" ? "an interest" : "a course"} first.`);
  }
  if (name.length > MAX_NAME_LENGTH) {
    return refuse(input, `A name is at most ${MAX_NAME_LENGTH} characters.`);
  }
  if (!chosen[kind].includes(name)) {
    chosen[kind].push(name);
  }
  input.value = "";
  hideDidYouMean(kind);
  drawChips();
  return true;
}

function addAssessment() {
  const tagInput = $("profile-assessment-tag");
  const scoreInput = $("profile-assessment-score");
  const tag = tagInput.value.trim();
  if (!tag) {
    return refuse(tagInput, "Type the assessment's tag first.");
  }
  if (tag.length > MAX_NAME_LENGTH) {
    return refuse(tagInput, `A tag is at most ${MAX_NAME_LENGTH} characters.`);
  }
  const score = scoreInput.value.trim();
  if (score === "" || !scoreInput.checkValidity() || !Number.isFinite(Number(score))) {
    return refuse(scoreInput, "Give a score from 0 to 10,000.");
  }
  const same = chosen.assessments.findIndex((assessment) => assessment.tag === tag);
  if (same >= 0) {
    chosen.assessments[same] = { tag, score }; // a tag given twice counts with the last score
  } else {
    chosen.assessments.push({ tag, score });
  }
  tagInput.value = "";
  scoreInput.value = "";
  hideDidYouMean("assessments");
  drawChips();
  return true;
}

// Suggestions: the catalogue's names for what is typed, in the field's <datalist>. A browser
// lists only the options that contain what was typed, so names found despite a typo are also
// offered as buttons ("Closest names").

function normalised(text) {
  return text.normalize("NFKC").toLowerCase().trim().replace(/[\s_-]+/g, "-");
}

const SUGGESTED = {
  interests: { input: "profile-interest", list: "profile-interest-options" },
  courses: { input: "profile-course", list: "profile-course-options" },
  assessments: { input: "profile-assessment-tag", list: "profile-assessment-options" },
};

function hideDidYouMean(kind) {
  document.querySelector(`.did-you-mean[data-kind="${kind}"]`)?.remove();
}

function pick(kind, name) {
  const input = $(SUGGESTED[kind].input);
  input.value = name;
  if (kind === "assessments") {
    hideDidYouMean(kind);
    $("profile-assessment-score").focus();
  } else {
    addName(kind);
    input.focus();
  }
}

function showDidYouMean(kind, typed, names) {
  hideDidYouMean(kind);
  const wanted = normalised(typed);
  if (!wanted || names.some((name) => normalised(name).includes(wanted))) {
    return;
  }
  const input = $(SUGGESTED[kind].input);
  const box = render.element("div", { className: "did-you-mean", attributes: { "data-kind": kind } }, ["Closest names: "]);
  for (const name of names.slice(0, 5)) {
    const button = render.element("button", { className: "suggestion", text: name, attributes: { type: "button" } });
    button.addEventListener("click", () => pick(kind, name));
    box.append(button, " ");
  }
  input.closest("fieldset").querySelector(".chips").before(box);
}

function suggestions(kind) {
  const { input: inputId, list: listId } = SUGGESTED[kind];
  const input = $(inputId);
  const list = $(listId);
  const status = $("profile-suggest-status");
  let timer = 0;
  let asking = null;

  async function ask() {
    const typed = input.value.trim();
    // Typed, then the view changed before the pause ended: nobody is waiting for suggestions.
    if (typed.length > MAX_NAME_LENGTH || $("view-profile").hidden) {
      return;
    }
    asking?.abort();
    asking = new AbortController();
    const values = { kind, q: typed, limit: SUGGEST_LIMIT, model_handle: $("profile-model").value };
    try {
      const answer = await call(`catalogue${query(values)}`, { signal: asking.signal });
      const names = answer.data.names;
      list.replaceChildren(...names.map((name) => new Option(name, name)));
      status.textContent = "";
      if (input.value.trim() === typed) {
        showDidYouMean(kind, typed, names);
      }
    } catch (error) {
      if (error?.name === "AbortError") {
        return;
      }
      if (error instanceof Problem && error.status === 401) {
        showProblems([{ error }], { focusKey: false });
      } else {
        status.textContent = `No suggestions: ${error.detail ?? error.message}`;
      }
    }
  }

  const later = (delay) => {
    clearTimeout(timer);
    timer = setTimeout(ask, delay);
  };
  input.addEventListener("input", (event) => {
    // A suggestion picked from the list replaces the text: take it at once.
    const picked = !(event instanceof InputEvent) || event.inputType === "insertReplacementText";
    if (picked && [...list.options].some((option) => option.value === input.value)) {
      clearTimeout(timer);
      pick(kind, input.value);
      return;
    }
    later(SUGGEST_DELAY_MS);
  });
  input.addEventListener("focus", () => {
    if (!list.options.length) {
      later(0);
    }
  });
  input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") {
      return;
    }
    event.preventDefault(); // Enter adds the name rather than sending the whole form
    // Enter may also be picking a suggestion from the list: look once the browser has put it in
    // the field (picking adds it by itself, and empties the field).
    setTimeout(() => {
      if (kind === "assessments") {
        $("profile-assessment-score").focus();
      } else if (input.value.trim()) {
        addName(kind);
      }
    }, 0);
  });
}

function profileBody(state) {
  const profile = {};
  if (state.interests.length) {
    profile.interests = state.interests;
  }
  if (state.courses.length) {
    profile.courses = state.courses;
  }
  if (state.assessments.length) {
    profile.assessments = state.assessments.map(({ tag, score }) => ({ tag, score: score === "" ? null : Number(score) }));
  }
  const body = { profile, explain: true };
  if (state.model_handle) {
    body.model_handle = state.model_handle;
  }
  if (state.top_n) {
    body.top_n = Number(state.top_n);
  }
  return body;
}

async function runProfile(state, signal) {
  const table = $("profile-results");
  render.clearTable(table);
  $("profile-match").hidden = true;
  $("profile-note").textContent = "";
  const answer = await call("similar-users", { body: profileBody(state), signal });
  render.matches($("profile-matched"), $("profile-unmatched"), answer.request_data);
  $("profile-match").hidden = false;
  render.neighbours(table, answer, "this profile");
}

// -- the forms ---------------------------------------------------------------------------------

function fill(state) {
  if (state.view === "lookup") {
    $("lookup-user").value = state.user_handle;
    setSelect($("lookup-model"), state.model_handle);
    $("lookup-top-n").value = state.top_n;
    $("lookup-mutual-only").checked = state.mutual_only;
  } else if (state.view === "compare") {
    $("compare-user").value = state.user_handle;
    setSelect($("compare-model-a"), state.model_handle);
    setSelect($("compare-model-b"), state.compare);
    $("compare-top-n").value = state.top_n;
    $("compare-mutual-only").checked = state.mutual_only;
  } else if (state.view === "profile") {
    chosen.interests = [...state.interests];
    chosen.courses = [...state.courses];
    chosen.assessments = state.assessments.map((assessment) => ({ ...assessment }));
    drawChips();
    setSelect($("profile-model"), state.model_handle);
    $("profile-top-n").value = state.top_n;
  }
}

function read(view) {
  const state = emptyState(view);
  if (view === "lookup") {
    state.user_handle = $("lookup-user").value.trim();
    state.model_handle = $("lookup-model").value;
    state.top_n = $("lookup-top-n").value.trim();
    state.mutual_only = $("lookup-mutual-only").checked;
  } else if (view === "compare") {
    state.user_handle = $("compare-user").value.trim();
    state.model_handle = $("compare-model-a").value;
    state.compare = $("compare-model-b").value;
    state.top_n = $("compare-top-n").value.trim();
    state.mutual_only = $("compare-mutual-only").checked;
  } else if (view === "profile") {
    state.interests = [...chosen.interests];
    state.courses = [...chosen.courses];
    state.assessments = chosen.assessments.map((assessment) => ({ ...assessment }));
    state.model_handle = $("profile-model").value;
    state.top_n = $("profile-top-n").value.trim();
  }
  return state;
}

function show(view) {
  for (const name of VIEWS) {
    $(`view-${name}`).hidden = name !== view;
  }
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    if (link.dataset.view === view) {
      link.setAttribute("aria-current", "page");
    } else {
      link.removeAttribute("aria-current");
    }
  }
  document.title = `${TITLES[view]} — ${SITE}`;
}

function run(state) {
  remember(state);
  const work = {
    lookup: runLookup,
    compare: runCompare,
    profile: runProfile,
    models: (_, signal) => loadModels(signal),
  }[state.view];
  return start((signal) => work(state, signal));
}

// Show and run a state: from a submit (a new history entry), or from the URL (none).
// Empty a view's results: a state that asks nothing shows nothing, not an earlier answer.
function clearResults(view) {
  if (view === "lookup") {
    render.clearTable($("lookup-results"));
    $("lookup-note").textContent = "";
  } else if (view === "compare") {
    [$("compare-a"), $("compare-b")].forEach(render.clearTable);
    $("compare-overlap").textContent = "";
    $("compare-note").textContent = "";
  } else if (view === "profile") {
    render.clearTable($("profile-results"));
    $("profile-match").hidden = true;
    $("profile-note").textContent = "";
  }
}

function go(state, { push }) {
  if (push) {
    pushUrl(state);
  }
  show(state.view);
  if (asks(state)) {
    run(state);
  } else {
    remember(state);
    clearResults(state.view);
    idle();
  }
}

// Load the models (for the selects) and then run what the URL says: at start, and with a new key.
function startFromUrl() {
  const state = stateOf(location.search);
  fill(state);
  show(state.view);
  remember(state);
  const work = {
    lookup: runLookup,
    compare: runCompare,
    profile: runProfile,
    models: async () => {},
  }[state.view];
  start(async (signal) => {
    await loadModels(signal);
    if (asks(state) && state.view !== "models") {
      await work(state, signal);
    }
  });
}

function switchTo(view) {
  const state = remembered[view] ?? emptyState(view);
  pushUrl(state);
  show(view);
  if (view === "models") {
    run(state);
  } else {
    idle();
  }
}

function wire() {
  $("api-key").value = storedKey();
  $("api-key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("api-key");
    const status = $("api-key-status");
    const key = input.value.trim();
    if (key && !isSendableKey(key)) {
      status.textContent = "An API key is made of visible ASCII characters only, without spaces.";
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    const kept = storeKey(key);
    input.value = key;
    input.removeAttribute("aria-invalid");
    status.classList.remove("wanted");
    if (!key) {
      status.textContent = "Key removed: calls are sent without one.";
    } else {
      status.textContent = kept
        ? "Key saved for this browser tab; it is sent with every call."
        : "Key kept until this page is closed: this browser does not let the page store it.";
    }
    startFromUrl();
  });

  for (const link of document.querySelectorAll("nav a[data-view]")) {
    link.addEventListener("click", (event) => {
      if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) {
        return; // a new tab or window follows the link itself
      }
      event.preventDefault();
      switchTo(link.dataset.view);
    });
  }

  $("lookup-form").addEventListener("submit", (event) => {
    event.preventDefault();
    go(read("lookup"), { push: true });
  });
  $("compare-form").addEventListener("submit", (event) => {
    event.preventDefault();
    go(read("compare"), { push: true });
  });
  $("profile-form").addEventListener("submit", (event) => {
    event.preventDefault();
    // What is typed but not yet added counts: the person meant it.
    for (const kind of Object.keys(NAMED)) {
      if ($(NAMED[kind].input).value.trim() && !addName(kind)) {
        return;
      }
    }
    if (($("profile-assessment-tag").value.trim() || $("profile-assessment-score").value.trim()) && !addAssessment()) {
      return;
    }
    const state = read("profile");
    if (!asks(state)) {
      start(async () => {
        throw new Problem(0, { title: "Nothing to match", detail: "Add at least one interest, course or assessment score, then search." });
      });
      $("profile-interest").focus();
      return;
    }
    go(state, { push: true });
  });

  for (const kind of Object.keys(NAMED)) {
    $(NAMED[kind].add).addEventListener("click", () => {
      addName(kind);
      $(NAMED[kind].input).focus();
    });
  }
  $("profile-assessment-add").addEventListener("click", () => {
    if (addAssessment()) {
      $("profile-assessment-tag").focus();
    }
  });
  $("profile-assessment-score").addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      if (addAssessment()) {
        $("profile-assessment-tag").focus();
      }
    }
  });
  for (const kind of Object.keys(SUGGESTED)) {
    suggestions(kind);
  }
  $("profile-model").addEventListener("change", () => {
    // Another model knows other names: ask again when a field is next used.
    for (const { list } of Object.values(SUGGESTED)) {
      $(list).replaceChildren();
    }
  });

  window.addEventListener("popstate", () => {
    const state = stateOf(location.search);
    fill(state);
    go(state, { push: false });
  });
}

wire();
startFromUrl();
