/* deeprel-view: draws entity and relation extractions in the browser. Plain JavaScript, no dependencies.

   DeeprelView.render(container, extraction, options) draws one Extraction dict (the shape of deeprel's
   Extraction.to_dict(), as the HTTP service answers): each sentence with its entity mentions highlighted by
   type, and each relation as a labelled arc from head to tail above the text. Sentences wrap into rows as wide
   as the container (laid out again when it resizes); a relation whose ends fall in different rows is drawn in
   two pieces, out over the edge of the head's row and back in over the edge of the tail's row.
   DeeprelView.renderReport(container, report) draws the pages `deeprel render` writes.

   Offsets in the data are Python code-point indices, so text is cut through Array.from(text) (code points),
   never with String.slice (UTF-16 units): emoji and other astral characters do not shift a highlight.
   Text reaches the page through textContent and attributes only, never as HTML. */
(function (global) {
  "use strict";

  const SVG_NS = "http://www.w3.org/2000/svg";
  const LEVEL_HEIGHT = 22; // px between arcs stacked above each other
  const TOP_MARGIN = 12; // px above the highest arc, room for its label
  const LABEL_FONT = "600 11px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
  const LABEL_PADDING = 5; // px kept free on each side of a label
  const EDGE = 6; // px a relation cut at a row break runs past the row's edge
  const PAGE_SIZE = 50; // documents a report draws at a time
  const SPACE = /\s/;
  const STATUS_TEXT = {
    tp: "correct",
    fp: "false positive: predicted, not in gold",
    fn: "false negative: in gold, not predicted",
  };

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svgElement(tag, attributes) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    return node;
  }

  function plural(count, one, many) {
    return `${count} ${count === 1 ? one : many}`;
  }

  /** "3 entities, 1 relation". */
  function describe(extraction) {
    const entities = (extraction.entities || []).length;
    const relations = (extraction.relations || []).length;
    return `${plural(entities, "entity", "entities")}, ${plural(relations, "relation", "relations")}`;
  }

  // Colours: the known types, sorted, get evenly spread hues, so a label set always looks the same;
  // a type outside that set gets a hue from a hash of its name.
  function hashHue(name) {
    let hash = 2166136261; // FNV-1a
    for (const ch of name) hash = Math.imul(hash ^ ch.codePointAt(0), 16777619);
    return (hash >>> 0) % 360;
  }

  function palette(types) {
    const sorted = Array.from(new Set(types)).sort();
    const hues = new Map(sorted.map((type, i) => [type, Math.round(205 + (i * 360) / sorted.length) % 360]));
    return (type) => (hues.has(type) ? hues.get(type) : hashHue(type));
  }

  function withHue(node, hue) {
    node.style.setProperty("--hue", String(hue));
    return node;
  }

  /** A row of colour chips, one per entity type. */
  function legend(types, title, hueOf) {
    const colour = hueOf || palette(types);
    const box = element("div", "legend");
    if (title) box.append(element("span", "legend-title", title));
    for (const type of types) box.append(withHue(element("span", "legend-item", type), colour(type)));
    return box;
  }

  function scoreText(item) {
    return typeof item.score === "number" ? ` · score ${item.score.toFixed(3)}` : "";
  }

  function statusText(item) {
    return item.status ? ` · ${STATUS_TEXT[item.status] || item.status}` : "";
  }

  /** The text from `from` to `to` as pieces {from, to, node}: strings, and a <mark> for each entity of `items`
      (indices, sorted by start, longest first). An entity inside another is drawn inside its mark; one that
      crosses another's end is left unmarked. */
  function markedPieces(chars, from, to, items, view) {
    const pieces = [];
    const text = (start, end) => {
      if (end > start) pieces.push({ from: start, to: end, node: chars.slice(start, end).join("") });
    };
    let cursor = from;
    let i = 0;
    while (i < items.length) {
      const index = items[i];
      const entity = view.entities[index];
      let next = i + 1;
      while (next < items.length && view.entities[items[next]].start_char < entity.end_char) next++;
      const inner = items.slice(i + 1, next).filter((k) => view.entities[k].end_char <= entity.end_char);
      const mark = withHue(element("mark", entity.status ? `entity ${entity.status}` : "entity"), view.hueOf(entity.type));
      mark.dataset.type = entity.type;
      mark.dataset.entity = String(index);
      mark.title = `${entity.type}${scoreText(entity)}${statusText(entity)}`;
      mark.append(...markedPieces(chars, entity.start_char, entity.end_char, inner, view).map((piece) => piece.node));
      mark.append(element("span", "entity-type", entity.type));
      view.marks.set(index, mark);
      text(cursor, entity.start_char);
      pieces.push({ from: entity.start_char, to: entity.end_char, node: mark });
      cursor = entity.end_char;
      i = next;
    }
    text(cursor, to);
    return pieces;
  }

  /** chars[from, to) cut after each run of whitespace: "lives in " gives "lives ", "in ". */
  function words(chars, from, to) {
    const parts = [];
    let start = from;
    for (let k = from + 1; k <= to; k++) {
      if (k === to || (SPACE.test(chars[k - 1]) && !SPACE.test(chars[k]))) {
        parts.push({ from: start, to: k, node: chars.slice(start, k).join("") });
        start = k;
      }
    }
    return parts;
  }

  /** A sentence as <span class="unit">s, the pieces between which a row may break: only after whitespace,
      so "Corp.," or "(AP)" stay whole. */
  function sentenceUnits(chars, sentence, items, view) {
    const units = [];
    for (const piece of markedPieces(chars, sentence.start_char, sentence.end_char, items, view)) {
      for (const part of typeof piece.node === "string" ? words(chars, piece.from, piece.to) : [piece]) {
        if (!units.length || SPACE.test(chars[part.from - 1])) units.push(element("span", "unit"));
        units[units.length - 1].append(part.node);
      }
    }
    return units;
  }

  let measureContext = null;

  function labelWidth(text) {
    if (!measureContext) {
      measureContext = document.createElement("canvas").getContext("2d");
      measureContext.font = LABEL_FONT;
    }
    return measureContext.measureText(text).width;
  }

  /** Arc pieces of one sentence, from the marks' positions (layout is read here, nothing is written). A relation
      within a row is one piece; one whose ends fall in different rows is two: from the head out over the row's
      edge, and in over the edge of the tail's row. The ends of several arcs on one mark are spread over its width,
      ordered by where the other end lies. In each row shorter pieces are placed first, and a piece goes one level
      above every placed piece (label included) that it overlaps, so nested and crossing arcs stack and labels
      never collide. */
  function layoutPieces(sentence, view) {
    const boxes = new Map(sentence.rows.map((row) => [row, row.getBoundingClientRect()]));
    const rowIndex = new Map(sentence.rows.map((row, i) => [row, i]));
    const rects = new Map();
    const rectOf = (mark) => {
      if (!rects.has(mark)) {
        const row = mark.closest(".row");
        const box = boxes.get(row);
        const r = mark.getBoundingClientRect();
        rects.set(mark, { row, left: r.left - box.left, right: r.right - box.left, top: r.top - box.top });
      }
      return rects.get(mark);
    };
    const centre = (rect) => (rect.left + rect.right) / 2;
    const pieces = [];
    const ends = new Map();
    const addEnd = (mark, end) => (ends.has(mark) ? ends.get(mark).push(end) : ends.set(mark, [end]));
    for (const index of sentence.relations) {
      const relation = view.relations[index];
      const head = view.marks.get(relation.head);
      const tail = view.marks.get(relation.tail);
      const [h, t] = [rectOf(head), rectOf(tail)];
      if (h.row === t.row) {
        const piece = { index, row: h.row, head, tail };
        pieces.push(piece);
        addEnd(head, { piece, role: "head", towards: centre(t) });
        addEnd(tail, { piece, role: "tail", towards: centre(h) });
      } else {
        const forward = rowIndex.get(t.row) > rowIndex.get(h.row);
        const out = { index, row: h.row, head, x2: forward ? boxes.get(h.row).width + EDGE : -EDGE };
        const into = { index, row: t.row, tail, x1: forward ? -EDGE : boxes.get(t.row).width + EDGE };
        pieces.push(out, into);
        addEnd(head, { piece: out, role: "head", towards: out.x2 });
        addEnd(tail, { piece: into, role: "tail", towards: into.x1 });
      }
    }
    for (const [mark, list] of ends) {
      list.sort((a, b) => a.towards - b.towards || a.piece.index - b.piece.index || (a.role === "head" ? -1 : 1));
      const { left, right, top } = rectOf(mark);
      const spread = (right - left) * 0.7;
      list.forEach((end, k) => {
        const x = list.length === 1 ? (left + right) / 2 : (left + right - spread) / 2 + (spread * k) / (list.length - 1);
        if (end.role === "head") Object.assign(end.piece, { x1: x, y1: top });
        else Object.assign(end.piece, { x2: x, y2: top });
      });
    }
    for (const piece of pieces) {
      const half = labelWidth(view.relations[piece.index].type) / 2 + LABEL_PADDING;
      piece.labelX = Math.min(Math.max((piece.x1 + piece.x2) / 2, half), boxes.get(piece.row).width - half);
      piece.lo = Math.min(piece.x1, piece.x2, piece.labelX - half);
      piece.hi = Math.max(piece.x1, piece.x2, piece.labelX + half);
      piece.level = 1;
    }
    const placed = [];
    for (const piece of pieces.slice().sort((a, b) => Math.abs(a.x2 - a.x1) - Math.abs(b.x2 - b.x1))) {
      for (const other of placed) {
        if (other.row === piece.row && other.lo < piece.hi && piece.lo < other.hi) {
          piece.level = Math.max(piece.level, other.level + 1);
        }
      }
      placed.push(piece);
    }
    return pieces;
  }

  const px = (value) => Math.round(value * 2) / 2;

  /** Draw arc pieces into their rows (layout is written here, nothing is read). The piece that leaves the head
      is the relation's `path.arc` with its `text.arc-label`; a continuation is a `path.arc-part`. */
  function drawPieces(pieces, view) {
    const byRow = new Map();
    for (const piece of pieces) (byRow.get(piece.row) || byRow.set(piece.row, []).get(piece.row)).push(piece);
    for (const [row, list] of byRow) {
      const height = Math.max(...list.map((piece) => piece.level)) * LEVEL_HEIGHT + TOP_MARGIN;
      row.style.paddingTop = `${height}px`; // marks move down by `height`; their x positions stay
      const svg = svgElement("svg", { class: "arcs" });
      const groups = list.map((piece) => pieceGroups(piece, height, view));
      // Labels after all arcs: a label's background then hides any arc leg that passes behind it.
      svg.append(...groups.map(([arc]) => arc), ...groups.map(([, label]) => label));
      row.prepend(svg);
    }
  }

  /** The SVG groups of one arc piece: its line and arrow, and its label. */
  function pieceGroups(piece, height, view) {
    const relation = view.relations[piece.index];
    const status = relation.status ? ` ${relation.status}` : "";
    const part = piece.head ? "" : "-part";
    const top = height - piece.level * LEVEL_HEIGHT;
    const [x1, x2] = [px(piece.x1), px(piece.x2)];
    const way = x2 >= x1 ? 1 : -1;
    const r = Math.min(6, Math.abs(x2 - x1) / (piece.head && piece.tail ? 2 : 1));
    let d = piece.head ? `M${x1},${px(height + piece.y1)} V${top + r} Q${x1},${top} ${x1 + way * r},${top}` : `M${x1},${top}`;
    d += piece.tail ? ` H${x2 - way * r} Q${x2},${top} ${x2},${top + r} V${px(height + piece.y2)}` : ` H${x2}`;
    const title =
      `${view.textOf(relation.head)} → ${view.textOf(relation.tail)}: ${relation.type}` +
      `${scoreText(relation)}${statusText(relation)}`;
    const group = () => {
      const node = svgElement("g", { class: `relation${status}` });
      node.append(svgElement("title"));
      node.firstChild.textContent = title;
      return node;
    };
    const arc = group();
    arc.append(svgElement("path", { class: `arc${part}${status}`, "data-relation": piece.index, d }));
    if (piece.tail) {
      const y = px(height + piece.y2);
      arc.append(svgElement("path", { class: "arrow", d: `M${x2 - 4},${y - 7} L${x2 + 4},${y - 7} L${x2},${y} Z` }));
    }
    const label = group();
    const width = labelWidth(relation.type) + 6;
    const x = px(piece.labelX);
    label.append(svgElement("rect", { class: "arc-label-bg", x: x - width / 2, y: top - 7, width, height: 14, rx: 3 }));
    const text = svgElement("text", {
      class: `arc-label${part}${status}`,
      x,
      y: top,
      "text-anchor": "middle",
      "dominant-baseline": "central",
    });
    text.style.font = LABEL_FONT;
    text.textContent = relation.type;
    label.append(text);
    const marks = [view.marks.get(relation.head), view.marks.get(relation.tail)];
    if (!view.groups.has(piece.index)) view.groups.set(piece.index, []);
    view.groups.get(piece.index).push(arc, label);
    const highlight = (on) => () => {
      for (const node of [...marks, ...view.groups.get(piece.index)]) node.classList.toggle("active", on);
    };
    for (const node of [arc, label]) {
      node.addEventListener("mouseenter", highlight(true));
      node.addEventListener("mouseleave", highlight(false));
    }
    return [arc, label];
  }

  /** Pack each sentence's units into rows as wide as the view, then draw each row's arcs: all widths are read
      before rows are written, all positions before arcs are written, so the browser lays out twice in all. */
  function layout(view) {
    const width = view.body.clientWidth;
    if (!width) return; // not displayed (yet): the resize observer calls again when it is
    view.width = width;
    const style = getComputedStyle(view.body);
    const available = width - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const widths = view.sentences.map((sentence) => sentence.units.map((unit) => unit.getBoundingClientRect().width));
    view.sentences.forEach((sentence, n) => {
      const rows = [];
      let used = 0;
      sentence.units.forEach((unit, k) => {
        if (!rows.length || (used > 0 && used + widths[n][k] > available)) {
          rows.push(element("div", "row"));
          used = 0;
        }
        rows[rows.length - 1].append(unit);
        used += widths[n][k];
      });
      sentence.node.replaceChildren(...rows);
      sentence.rows = rows;
    });
    view.groups = new Map();
    const pieces = view.sentences.map((sentence) => layoutPieces(sentence, view));
    pieces.forEach((list) => drawPieces(list, view));
  }

  /** Draw one extraction into `container` (its content is replaced). Options: `entityTypes` (all types the
      colours are chosen over, e.g. the model's, so that colours are the same for every text; default: the
      types in this extraction), `legend` (false: no legend of types). Sentences wrap to the container's width
      and are laid out again when it changes. Returns the view's root element. */
  function render(container, extraction, options) {
    const settings = options || {};
    const chars = Array.from(extraction.text || "");
    const entities = extraction.entities || [];
    const relations = extraction.relations || [];
    const present = Array.from(new Set(entities.map((e) => e.type))).sort();
    const known = settings.entityTypes && settings.entityTypes.length ? settings.entityTypes : present;
    const root = element("div", "deeprel-view");
    if (settings.legend !== false && present.length) root.append(legend(present, null, palette(known)));
    const body = element("div", "sentences");
    root.append(body);
    container.replaceChildren(root);
    if (!chars.length) {
      body.append(element("p", "empty", "(no text)"));
      return root;
    }
    const view = {
      entities,
      relations,
      body,
      hueOf: palette(known),
      marks: new Map(), // entity index -> its <mark>
      groups: new Map(), // relation index -> the SVG groups drawing it
      width: 0,
      textOf: (index) => chars.slice(entities[index].start_char, entities[index].end_char).join(""),
    };
    const sentences = extraction.sentences && extraction.sentences.length ? extraction.sentences : [{ start_char: 0, end_char: chars.length }];
    view.sentences = sentences.map((sentence) => {
      const inside = entities
        .map((_, i) => i)
        .filter((i) => sentence.start_char <= entities[i].start_char && entities[i].end_char <= sentence.end_char);
      inside.sort((a, b) => entities[a].start_char - entities[b].start_char || entities[b].end_char - entities[a].end_char || a - b);
      const node = element("div", "sentence");
      const units = sentenceUnits(chars, sentence, inside, view);
      const row = element("div", "row");
      row.append(...units);
      node.append(row);
      body.append(node);
      return { node, units, rows: [row], relations: [] };
    });
    const undrawn = [];
    relations.forEach((relation, index) => {
      const head = view.marks.get(relation.head);
      const tail = view.marks.get(relation.tail);
      const node = head && tail && head.closest(".sentence");
      const sentence = node && node === tail.closest(".sentence") && view.sentences.find((s) => s.node === node);
      if (sentence) sentence.relations.push(index);
      else undrawn.push(index);
    });
    if (undrawn.length) {
      const names = undrawn.map((i) => `${relations[i].type} (entity ${relations[i].head} → entity ${relations[i].tail})`);
      root.append(element("p", "undrawn", `Not drawn, their entities are not marked in one sentence: ${names.join("; ")}`));
    }
    layout(view);
    new ResizeObserver(() => {
      if (body.clientWidth !== view.width) layout(view);
    }).observe(body);
    return root;
  }

  function countsLine(counts) {
    const line = element("span", "counts");
    for (const kind of ["entities", "relations"]) {
      const part = element("span", "counts-part", `${kind} `);
      for (const status of ["tp", "fp", "fn"]) {
        const value = counts[kind][status];
        part.append(element("span", `count ${status}${value && status !== "tp" ? " nonzero" : ""}`, `${value} ${status}`));
      }
      line.append(part);
    }
    return line;
  }

  function summaryTable(summary) {
    const table = element("table", "summary");
    const head = table.createTHead().insertRow();
    for (const name of ["", "tp", "fp", "fn", "precision", "recall", "F1"]) head.append(element("th", null, name));
    const body = table.createTBody();
    for (const kind of ["entities", "relations"]) {
      const row = body.insertRow();
      const c = summary[kind];
      row.append(element("th", null, kind));
      for (const value of [c.tp, c.fp, c.fn, c.precision.toFixed(1), c.recall.toFixed(1), c.f1.toFixed(1)]) {
        row.append(element("td", null, String(value)));
      }
    }
    table.createCaption().textContent = "Strict matching (span and type; relations: type, direction and both entities)";
    return table;
  }

  function statusLegend() {
    const box = element("div", "legend status-legend");
    box.append(element("span", "legend-title", "Marks"));
    box.append(element("span", "status-sample tp", "correct (tp)"));
    box.append(element("span", "status-sample fp", "predicted, not in gold (fp)"));
    box.append(element("span", "status-sample fn", "in gold, missed (fn)"));
    return box;
  }

  function checkbox(text, onChange) {
    const label = element("label", "control");
    const input = element("input");
    input.type = "checkbox";
    input.addEventListener("change", () => onChange(input.checked));
    label.append(input, ` ${text}`);
    return label;
  }

  /** Draw a `deeprel render` report: a header with the summary, then the documents a page at a time. */
  function renderReport(container, report) {
    const hueOf = palette(report.entityTypes);
    const compared = report.summary !== null && report.summary !== undefined;
    const page = element("div", "deeprel-report");
    const header = element("header", "report-header");
    header.append(element("h1", null, report.title));
    const shown = report.documents.length;
    header.append(
      element("p", "report-meta", shown < report.total ? `${shown} of ${report.total} documents (limited)` : plural(shown, "document", "documents"))
    );
    if (compared) {
      header.append(summaryTable(report.summary));
      header.append(element("p", "report-meta", `${plural(report.summary.documents_with_errors, "document", "documents")} with errors`));
    }
    header.append(legend(report.entityTypes, "Entity types", hueOf));
    if (compared) header.append(statusLegend());

    const state = { page: 0, errorsOnly: false };
    const list = element("div", "documents");
    const controls = element("div", "controls");
    const pagers = [element("div", "pager"), element("div", "pager")];
    if (compared) {
      controls.append(
        checkbox("only documents with errors", (checked) => {
          state.errorsOnly = checked;
          state.page = 0;
          show();
        }),
        checkbox("gold above predicted", (checked) => list.classList.toggle("stacked", checked))
      );
    }
    controls.append(pagers[0]);
    controls.hidden = !compared && report.documents.length <= PAGE_SIZE; // nothing to choose
    page.append(header, controls, list, pagers[1]);
    container.replaceChildren(page);

    function chosen() {
      return report.documents.map((doc, i) => [doc, i + 1]).filter(([doc]) => !state.errorsOnly || doc.errors);
    }

    function turn(step) {
      state.page += step;
      show();
      if (controls.getBoundingClientRect().top < 0) controls.scrollIntoView();
    }

    function updatePagers(count) {
      const pages = Math.max(1, Math.ceil(count / PAGE_SIZE));
      const first = state.page * PAGE_SIZE;
      for (const pager of pagers) {
        const previous = element("button", "previous", "← previous");
        const next = element("button", "next", "next →");
        previous.type = next.type = "button";
        previous.disabled = state.page === 0;
        next.disabled = state.page >= pages - 1;
        previous.addEventListener("click", () => turn(-1));
        next.addEventListener("click", () => turn(1));
        const where = count ? `documents ${first + 1}–${Math.min(first + PAGE_SIZE, count)} of ${count}` : "no documents";
        pager.replaceChildren(previous, element("span", "pager-position", where), next);
        pager.hidden = pages === 1;
      }
    }

    function show() {
      const documents = chosen();
      updatePagers(documents.length);
      list.replaceChildren();
      for (const [doc, number] of documents.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE)) {
        const card = element("section", doc.errors ? "document has-errors" : "document");
        const top = element("header", "document-header");
        top.append(element("span", "document-number", `#${number}`), element("span", "document-id", doc.id));
        if (doc.counts) top.append(countsLine(doc.counts));
        card.append(top);
        list.append(card);
        const sides = doc.gold ? [["Gold", doc.gold], ["Predicted", doc.predicted]] : [[null, doc.predicted]];
        const panels = element("div", "panels");
        card.append(panels);
        for (const [name, extraction] of sides) {
          const panel = element("div", "panel");
          if (name) panel.append(element("div", "panel-title", name));
          const body = element("div", "panel-body");
          panel.append(body);
          panels.append(panel);
          render(body, extraction, { entityTypes: report.entityTypes, legend: false });
        }
      }
    }

    show();
    return page;
  }

  global.DeeprelView = { render, renderReport, legend, describe, palette };
})(window);
