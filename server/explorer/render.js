// Drawing answers into the page. Every name from an export goes in as text (textContent or an
// attribute value), never as markup.

// Return a new element: `options` may give className, text, attributes ({name: value}) and
// children (nodes or strings).
export function element(tag, options = {}, children = []) {
  const node = document.createElement(tag);
  if (options.className) {
    node.className = options.className;
  }
  if (options.text !== undefined) {
    node.textContent = options.text;
  }
  for (const [name, value] of Object.entries(options.attributes ?? {})) {
    if (value !== undefined && value !== null && value !== false) {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  node.append(...children);
  return node;
}

// Return a share (a fraction of the score) as a percentage with at most one decimal.
export function percent(share) {
  return `${Number((share * 100).toFixed(1))}%`;
}

function kindName(kind) {
  return String(kind).replaceAll("_", " ");
}

// Return the list of what a neighbour and the asker share ("course: python (40%)"), or null.
function evidence(neighbour) {
  if (!Array.isArray(neighbour.shared)) {
    return null;
  }
  const list = element("ul", { className: "evidence" });
  for (const item of neighbour.shared) {
    list.append(element("li", { text: `${kindName(item.kind)}: ${item.name} (${percent(item.share)})` }));
  }
  const rest = neighbour.shared_rest;
  if (rest && rest.features > 0) {
    const other = rest.features === 1 ? "other feature" : "other features";
    const share = neighbour.score ? ` (${percent(rest.contribution / neighbour.score)})` : "";
    list.append(element("li", { className: "rest", text: `and ${rest.features} ${other}${share}` }));
  }
  if (list.childElementCount === 0) {
    list.append(element("li", { className: "rest", text: "nothing shared" }));
  }
  return list;
}

function describeRun(data) {
  return `model ${data.model_handle}, run ${data.run_id} (generated ${data.generated_at})`;
}

// Fill a neighbours table (a <table> with a <caption> and a <tbody>) from an API answer.
// `about` names the asker in the caption; `inBoth`, a Set of handles as text, marks the rows
// of users also in the other list (compare view). A table whose header has a "mutual" column
// marks the matches that go both ways (a user's answers say which; a profile's have none).
export function neighbours(table, answer, about, inBoth = null) {
  const data = answer.data;
  const found = data.similar_users;
  const marksMutual = table.tHead.querySelector("th.mutual") !== null;
  const rows = found.map((neighbour) => {
    const handle = String(neighbour.user_handle);
    const shared = inBoth?.has(handle) ?? false;
    const row = element("tr", {
      className: shared ? "shared" : "",
      attributes: { "data-user-handle": handle, "data-mutual": marksMutual ? String(neighbour.mutual === true) : null },
    });
    row.append(element("td", { className: "handle", text: handle }));
    if (inBoth) {
      row.append(element("td", { className: "both", text: shared ? "✓ both" : "" }));
    }
    if (marksMutual) {
      row.append(element("td", { className: "mutual", text: neighbour.mutual === true ? "↔ mutual" : "" }));
    }
    // The bar repeats the number beside it, so assistive technology reads the number only.
    const meter = element("meter", {
      attributes: { min: 0, max: 1, value: neighbour.score, "aria-hidden": "true" },
    });
    row.append(element("td", { className: "score" }, [String(neighbour.score), meter]));
    const list = evidence(neighbour);
    row.append(element("td", { className: "shared" }, list ? [list] : []));
    return row;
  });
  table.tBodies[0].replaceChildren(...rows);
  const mutualOnly = answer.request_data?.mutual_only === true;
  const noun = mutualOnly ? ["mutual match", "mutual matches"] : ["similar user", "similar users"];
  const count = found.length === 1 ? `1 ${noun[0]}` : `${found.length} ${noun[1]}`;
  let caption = `${count} of ${about} in ${describeRun(data)}`;
  if (!found.length) {
    caption = mutualOnly
      ? `No mutual matches of ${about} in ${describeRun(data)}: none of their similar users lists them back.`
      : `No similar users of ${about} in ${describeRun(data)}: nobody shares anything with them.`;
  }
  table.caption.textContent = caption;
  showTable(table, true);
}

// Show or hide a results table, and the scrolling region around it (focusable only when shown).
function showTable(table, shown) {
  table.hidden = !shown;
  const region = table.closest(".table-scroll");
  if (region) {
    region.hidden = !shown;
  }
}

export function clearTable(table) {
  table.tBodies[0].replaceChildren();
  table.caption.textContent = "";
  showTable(table, false);
}

const HOW = {
  exact: "exactly as spelt",
  normalised: "once case and spaces are normalised",
  fuzzy: "closest spelling",
};

// Fill the lists of what a profile's names were matched to, and what matched nothing.
export function matches(matchedList, unmatchedList, requestData) {
  const matched = requestData.matched ?? [];
  const unmatched = requestData.unmatched ?? [];
  matchedList.replaceChildren(
    ...matched.map((entry) => {
      const how = HOW[entry.how] ?? entry.how;
      const score = entry.score !== undefined ? `, similarity ${entry.score}` : "";
      const item = element("li", {
        attributes: { "data-how": entry.how, "data-kind": entry.kind },
        text: `${kindName(entry.kind)}: “${entry.input}” → ${entry.name} (${how}${score})`,
      });
      if (entry.evidence === false) {
        item.classList.add("no-evidence");
        item.append(element("span", { className: "caveat", text: " — adds no evidence in this model" }));
      }
      return item;
    }),
  );
  if (!matched.length) {
    matchedList.append(element("li", { className: "none", text: "nothing" }));
  }
  unmatchedList.replaceChildren(
    ...unmatched.map((entry) =>
      element("li", {
        attributes: { "data-kind": entry.kind },
        text: `${kindName(entry.kind)}: “${entry.input}” ${entry.reason}`,
      }),
    ),
  );
  if (!unmatched.length) {
    unmatchedList.append(element("li", { className: "none", text: "nothing: every name was matched" }));
  }
}

function searchText(search) {
  if (!search) {
    return "";
  }
  let text = String(search.method);
  if (search.recall_sample !== undefined) {
    const at = search.recall_at ?? 10;
    const users = search.recall_sample_users !== undefined ? ` on ${search.recall_sample_users} users` : "";
    text += ` (recall@${at} ${search.recall_sample}${users})`;
  }
  return text;
}

function count(value) {
  return typeof value === "number" ? value.toLocaleString("en-US") : "";
}

// Fill the models table and the default model's line from the /models answer.
export function models(table, defaultLine, answer) {
  const k = answer.models.find((run) => run.quality)?.quality.k ?? 10;
  const headers = table.tHead.rows[0].cells;
  headers[6].textContent = `Recall@${k}`;
  headers[7].textContent = `NDCG@${k}`;
  headers[8].textContent = `Most popular recall@${k}`;
  const rows = answer.models.map((run) => {
    const quality = run.quality ?? {};
    const isDefault = run.model_handle === answer.default_model;
    const name = element("th", { attributes: { scope: "row" }, text: run.model_handle });
    if (isDefault) {
      name.append(element("span", { className: "badge", text: " (default)" }));
    }
    const time = element("time", { attributes: { datetime: run.generated_at }, text: run.generated_at });
    const number = (value) => element("td", { className: "number", text: value ?? "" });
    return element("tr", { className: isDefault ? "default" : "", attributes: { "data-model-handle": run.model_handle } }, [
      name,
      element("td", { className: "run", text: run.run_id }),
      element("td", {}, [time]),
      number(count(run.user_count)),
      number(count(run.top_n)),
      element("td", { text: searchText(run.search) }),
      number(quality.recall !== undefined ? String(quality.recall) : "not measured"),
      number(quality.ndcg !== undefined ? String(quality.ndcg) : ""),
      number(quality.most_popular_recall !== undefined ? String(quality.most_popular_recall) : ""),
      number(quality.users_evaluated !== undefined ? `${count(quality.users_evaluated)} of ${count(quality.users_eligible)}` : ""),
    ]);
  });
  table.tBodies[0].replaceChildren(...rows);
  table.caption.textContent = rows.length ? `Current runs of ${rows.length} model${rows.length === 1 ? "" : "s"}` : "No model has a published run yet.";
  if (answer.default_model) {
    defaultLine.replaceChildren("Default model: ", element("strong", { text: answer.default_model }), ` — ${answer.default_reason}.`);
  } else {
    defaultLine.textContent = `No default model: ${answer.default_reason ?? "no model has a published run"}.`;
  }
}

// Return the nodes saying a problem: its title, detail and each invalid parameter's reason.
export function problem(error, lead = "") {
  const parts = [];
  const title = error.title || (error.status ? `Error ${error.status}` : "Error");
  parts.push(element("p", { className: "title", text: lead ? `${lead}: ${title}` : title }));
  if (error.detail) {
    parts.push(element("p", { className: "detail", text: error.detail }));
  }
  if (error.invalidParams?.length) {
    const list = element("ul", { className: "reasons" });
    for (const param of error.invalidParams) {
      list.append(element("li", { text: `${param.name}: ${param.reason}` }));
    }
    parts.push(list);
  }
  return parts;
}
