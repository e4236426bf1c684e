// The evaluation plot: recall@k of each model's current run and of the most-popular baseline, as
// an SVG bar chart built from DOM nodes (names go in as text).

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 480;
const LABEL = 150; // room for a model's name left of its bar
const VALUE = 56; // room for the value right of a bar
const ROW = 30;
const BAR = 18;
const TOP = 8;
const AXIS = 28;

function node(tag, attributes = {}, text = undefined) {
  const made = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    made.setAttribute(name, String(value));
  }
  if (text !== undefined) {
    made.textContent = text;
  }
  return made;
}

// Return the bars to draw: each measured model, then the baseline (from the default model's
// measure, or the first measured one: runs of one export share it).
export function bars(answer) {
  const measured = answer.models.filter((run) => typeof run.quality?.recall === "number");
  const rows = measured.map((run) => ({
    label: run.model_handle,
    value: run.quality.recall,
    kind: run.model_handle === answer.default_model ? "default" : "model",
  }));
  const source = measured.find((run) => run.model_handle === answer.default_model) ?? measured[0];
  if (source && typeof source.quality.most_popular_recall === "number") {
    rows.push({ label: "most popular", value: source.quality.most_popular_recall, kind: "baseline" });
  }
  return rows;
}

// Draw the bars into `svg`, keeping its <title> and replacing its <desc> with the values as text.
export function draw(svg, answer) {
  const rows = bars(answer);
  const k = answer.models.find((run) => run.quality)?.quality.k ?? 10;
  for (const child of [...svg.children]) {
    if (child.localName !== "title" && child.localName !== "desc") {
      child.remove();
    }
  }
  const title = svg.querySelector("title");
  const desc = svg.querySelector("desc");
  if (title) {
    title.textContent = `Recall@${k} per model`;
  }
  if (!rows.length) {
    svg.setAttribute("viewBox", `0 0 ${WIDTH} 40`);
    svg.append(node("text", { x: 0, y: 24, class: "empty" }, "No current run recorded its quality."));
    if (desc) {
      desc.textContent = "No current run recorded its quality.";
    }
    return;
  }
  const top = Math.max(...rows.map((row) => row.value), 0);
  const scale = top > 0 ? (WIDTH - LABEL - VALUE) / top : 0;
  const height = TOP + rows.length * ROW + AXIS;
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${height}`);
  rows.forEach((row, at) => {
    const y = TOP + at * ROW;
    const width = Math.max(row.value * scale, 0);
    const group = node("g", { class: `row ${row.kind}` });
    group.append(
      node("text", { x: LABEL - 8, y: y + BAR / 2, class: "label", "text-anchor": "end", "dominant-baseline": "central" }, row.label),
      node("rect", { x: LABEL, y, width: Math.max(width, 1), height: BAR, class: "bar" }),
      node("text", { x: LABEL + width + 6, y: y + BAR / 2, class: "value", "dominant-baseline": "central" }, String(row.value)),
    );
    svg.append(group);
  });
  const axisY = TOP + rows.length * ROW;
  svg.append(
    node("line", { x1: LABEL, x2: LABEL, y1: TOP - 4, y2: axisY, class: "axis" }),
    node("line", { x1: LABEL, x2: WIDTH - VALUE, y1: axisY, y2: axisY, class: "axis" }),
    node("text", { x: LABEL, y: axisY + 18, class: "tick", "text-anchor": "middle" }, "0"),
    node("text", { x: WIDTH - VALUE, y: axisY + 18, class: "tick", "text-anchor": "middle" }, String(top)),
    node("text", { x: (LABEL + WIDTH - VALUE) / 2, y: axisY + 18, class: "tick", "text-anchor": "middle" }, `recall@${k}`),
  );
  if (desc) {
    desc.textContent = rows.map((row) => `${row.label}: ${row.value}`).join("; ");
  }
}
