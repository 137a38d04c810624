// The page of textcnn's service: the model card from GET /info, and for each text typed, POST
// /explain's label, a bar per class and the text itself, its own characters, with each token's span
// shaded by the token's part in the label's logit (or, for a text the model cannot read, a notice).
// A multi-label model's answer shows a chip per label given and each label's bar with its threshold
// marked; the text is shaded for the chip selected (the first, at first).
// Every text from the user or the server goes into the page through textContent (never innerHTML),
// and the server's Content-Security-Policy allows no inline script: typed markup stays text.
"use strict";

(function () {
  const form = document.getElementById("form");
  const box = document.getElementById("texts");
  const button = document.getElementById("submit");
  const message = document.getElementById("message");
  const results = document.getElementById("results");
  const card = document.getElementById("card");
  let maxTexts = null; // from /info: limits.max_explain_texts
  let tokenizer = null; // from /info: the model's tokenizer (name, summary, ...), named for unread texts
  let thresholds = null; // from /info: a multi-label model's threshold of each label, by name
  // Letters of the right-to-left scripts (Hebrew, Arabic, Syriac, Thaana, N'Ko, ... and Arabic's
  // presentation forms): a token of theirs inside an English sentence (a title, the detail line) is
  // isolated (U+2068 FSI ... U+2069 PDI), or the bidi algorithm carries the numbers after it into its run.
  const RTL = /[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]/;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function signed(x, digits) {
    const d = digits === undefined ? 3 : digits;
    return (x >= 0 ? "+" : "−") + Math.abs(x).toFixed(d);
  }

  function percent(p) {
    return (100 * p).toFixed(1) + "%";
  }

  // A token or n-gram quoted inside a sentence of the page, isolated when it reads right to left.
  function quoted(text) {
    return "“" + (RTL.test(text) ? "\u2068" + text + "\u2069" : text) + "”";
  }

  function showMessage(text) {
    message.textContent = text;
    message.hidden = false;
  }

  function clearMessage() {
    message.textContent = "";
    message.hidden = true;
  }

  // An error answer of the service as one sentence: its `detail` is a string, or FastAPI's list of
  // {loc, msg, type}. `lines` maps texts[i] back to the line of the box it came from.
  function describeError(status, body, lines) {
    let detail = body && body.detail;
    if (Array.isArray(detail)) {
      detail = detail
        .map(function (error) {
          return String(error.msg || "invalid").replace(/^Value error, /, "");
        })
        .join("; ");
    }
    if (typeof detail !== "string" || !detail) detail = "HTTP " + status;
    detail = detail.replace(/texts\[(\d+)\]/g, function (_, i) {
      const line = lines[Number(i)];
      return line === undefined ? "texts[" + i + "]" : "line " + line;
    });
    const what = { 413: "Too large", 422: "Not accepted", 504: "The model took too long", 503: "Not ready" };
    return (what[status] || "The server answered " + status) + ": " + detail;
  }

  async function getJSON(path, options) {
    let response;
    try {
      response = await fetch(path, options);
    } catch (error) {
      const gone = new Error("The server cannot be reached (" + path + "): is it still running?");
      gone.status = 0;
      throw gone;
    }
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    if (!response.ok) {
      const failed = new Error("HTTP " + response.status);
      failed.status = response.status;
      failed.body = body;
      throw failed;
    }
    return body;
  }

  // -- the model card ------------------------------------------------------------------------

  function showCard(info) {
    const model = (info && info.model) || {};
    const config = model.model || {};
    const data = model.data || {};
    const test = (model.metrics || {}).test || {};
    const limits = model.limits || {};
    maxTexts = limits.max_explain_texts || null;
    tokenizer = model.tokenizer || null;
    const decision = model.task === "multi-label" ? model.decision || {} : null;
    thresholds = decision ? decision.thresholds || null : null;
    const rows = [
      ["Dataset", data.dataset],
      ["Pooling", (model.pooling || {}).name || config.pooling, (model.pooling || {}).summary], // summary on hover
      ["Members", describeMembers(model.members)],
      ["Tokenizer", tokenizer && (tokenizer.spelled || tokenizer.name), tokenizer && describeTokenizer(tokenizer)],
      ["Variant", config.variant],
      ["Test accuracy", typeof test.accuracy === "number" ? percent(test.accuracy) : null],
      ["Vocabulary", typeof model.vocab_size === "number" ? model.vocab_size.toLocaleString("en") + " words" : null],
      ["Labels", Array.isArray(model.labels) ? model.labels.join(", ") : null],
      ["Model", model.id],
    ];
    if (decision) rows.splice(rows.length - 2, 0, ["Task", "multi-label", describeDecision(decision)]);
    const list = el("dl");
    rows.forEach(function (row) {
      const item = el("div", "item");
      item.appendChild(el("dt", null, row[0]));
      const value = el("dd", null, row[1] === undefined || row[1] === null ? "—" : row[1]);
      if (row[2]) value.title = row[2];
      item.appendChild(value);
      list.appendChild(item);
    });
    if (tokenizer && tokenizer.summary) {
      // What the tokenizer keeps decides which texts the model can read at all: said in words.
      const note = el("p", "muted card-note", "Reads text with the ");
      note.appendChild(el("strong", null, tokenizer.name));
      note.appendChild(document.createTextNode(" tokenizer: " + tokenizer.summary + "."));
      card.replaceChildren(list, note);
    } else {
      card.replaceChildren(list);
    }
  }

  // A multi-label model's decision on hover: "Each label whose probability reaches its threshold
  // (anger 0.28, joy 0.25, love 0.27); at least the most probable one. Chosen on dev macro-F1 ...".
  function describeDecision(decision) {
    const cuts = Object.keys(decision.thresholds || {}).map(function (label) {
      return label + " " + Number(decision.thresholds[label]).toFixed(2);
    });
    return "Each label whose probability reaches its threshold (" + cuts.join(", ") + ")" +
      (decision.at_least_one ? "; at least the most probable one" : "") +
      (decision.chosen ? ". Thresholds " + decision.chosen : "");
  }

  // The tokenizer on hover: the registry's summary, and what it is for.
  function describeTokenizer(entry) {
    return [entry.summary, entry.use ? "For " + entry.use : null].filter(Boolean).join(". ");
  }

  // "max ×3, avg ×2, nbsvm" from /info's members; null for a single model (the row then shows "—").
  function describeMembers(members) {
    if (!Array.isArray(members) || members.length < 2) return null;
    const counts = {};
    const order = [];
    members.forEach(function (member) {
      const name = member.kind === "cnn" ? member.pooling : member.kind;
      if (!(name in counts)) order.push(name);
      counts[name] = (counts[name] || 0) + 1;
    });
    return order
      .map(function (name) {
        return counts[name] > 1 ? name + " ×" + counts[name] : name;
      })
      .join(", ");
  }

  async function loadCard() {
    try {
      showCard(await getJSON("/info"));
    } catch (error) {
      card.replaceChildren(el("p", "message", "The model card could not be loaded: " + error.message));
    }
  }

  // -- one explanation -----------------------------------------------------------------------

  // For each token, the listed n-gram in which it weighs most (none: not in the top n-grams).
  function ngramsByToken(explanation) {
    const best = explanation.tokens.map(function () {
      return null;
    });
    explanation.for.concat(explanation.against).forEach(function (ngram) {
      for (let i = ngram.start; i < ngram.end; i++) {
        const part = ngram.token_parts[i - ngram.start];
        if (best[i] === null || Math.abs(part) > Math.abs(best[i].part)) best[i] = { ngram: ngram, part: part };
      }
    });
    return best;
  }

  // An n-gram as it stands in the text ("电影", "don't"), where render() found it from the spans;
  // else the model's tokens joined by spaces ("电 影", "do n't").
  // A character n-gram (a char-lr member's) is shown as its characters, "␣" marking a word's edge.
  function ngramText(ngram) {
    if (ngram.characters) return ngram.ngram.replace(/ /g, "␣");
    return ngram.typed || ngram.ngram;
  }

  // In a sentence: as typed, and as the model reads it where that differs other than in spacing
  // ("“Gorgeous,” read as “gorgeous ,”"; not "“电影” read as “电 影”"); a character n-gram with the
  // words holding it ("“␣mov” in “movie”").
  function quotedNgram(ngram) {
    if (ngram.characters) return quoted(ngramText(ngram)) + (ngram.typed ? " in " + quoted(ngram.typed) : "");
    const typed = ngramText(ngram);
    const differs = typed.replace(/\s+/g, "") !== ngram.ngram.replace(/\s+/g, "");
    return quoted(typed) + (differs ? " read as " + quoted(ngram.ngram) : "");
  }

  // Each listed n-gram's characters in the text: from its first token's start to its last one's end.
  function placeNgrams(explanation, chars, spans) {
    explanation.for.concat(explanation.against).forEach(function (ngram) {
      const first = spans[ngram.start];
      const last = spans[ngram.end - 1];
      if (first && last && first[0] < last[1]) ngram.typed = chars.slice(first[0], last[1]).join("");
    });
  }

  function isLinear(ngram) {
    return ngram.kind !== null && ngram.kind !== undefined && ngram.kind !== "cnn";
  }

  function describeNgram(ngram) {
    if (isLinear(ngram)) {
      // A linear member's n-gram: its feature value times its weight, times the member's weight.
      return quotedNgram(ngram) + " (" + ngram.kind + " member " + ngram.member + ", a " + ngram.width +
        (ngram.characters ? "-character n-gram" : "-gram") + "): value " + ngram.activation.toFixed(3) +
        " × weight " + ngram.weight.toFixed(3) + " = " +
        signed(ngram.activation * ngram.weight) + ", a share of " + signed(ngram.contribution) +
        " in the members' weighted mean logit";
    }
    const where = quotedNgram(ngram) + " (width " + ngram.width + ", feature map " + ngram.filter +
      (ngram.slot ? ", slot " + ngram.slot : "") +
      (ngram.member !== null && ngram.member !== undefined ? ", ensemble member " + ngram.member : "") + "): ";
    const product = "activation " + ngram.activation.toFixed(3) + " × weight " + ngram.weight.toFixed(3);
    if (ngram.member !== null && ngram.member !== undefined) {
      // An ensemble's logit is its members' weighted mean: each member's share is its own product times its weight.
      return where + product + " = " + signed(ngram.activation * ngram.weight) +
        ", a share of " + signed(ngram.contribution) + " in the members' weighted mean logit";
    }
    return where + product + " = " + signed(ngram.contribution);
  }

  // A token in words: as typed and as the model reads it (when they differ: "“Gorgeous”, read as
  // “gorgeous”"), whether the vocabulary knows it, its part in the label's logit and its n-gram.
  function describeToken(explanation, i, found, original) {
    const token = explanation.tokens[i];
    let text = original && original !== token ? quoted(original) + ", read as " + quoted(token) : quoted(token);
    const known = !Array.isArray(explanation.known) || explanation.known[i] !== false;
    if (explanation.unread) return text + ": not in the model's vocabulary";
    text += ": ";
    if (!known) text += "not in the model's vocabulary (read as the unknown word); ";
    const part = explanation.token_parts[i];
    text += signed(part) + (part >= 0 ? " for " : " against ") + explanation.label;
    if (found) text += "; in " + describeNgram(found.ngram);
    else text += "; in none of the n-grams listed below";
    return text;
  }

  function bars(explanation) {
    const grid = el("div", "bars");
    const entries = Object.keys(explanation.probabilities).map(function (label) {
      return [label, explanation.probabilities[label]];
    });
    entries.sort(function (a, b) {
      return b[1] - a[1];
    });
    entries.forEach(function (entry) {
      grid.appendChild(el("span", "name", entry[0]));
      const bar = el("div", "bar");
      bar.setAttribute("role", "img");
      bar.setAttribute("aria-label", entry[0] + " " + percent(entry[1]));
      const fill = el("div", entry[0] === explanation.label ? "fill top" : "fill");
      fill.style.width = (100 * entry[1]).toFixed(2) + "%"; // CSSOM: allowed by style-src 'self'
      bar.appendChild(fill);
      grid.appendChild(bar);
      grid.appendChild(el("span", "value", percent(entry[1])));
    });
    return grid;
  }

  // The spans of the tokens in `chars` (the text's code points), or null where they cannot be used
  // (an older server gives none; a span out of the text or overlapping the one before): the page
  // then shows the model's tokens joined by spaces, as it did before spans.
  function usableSpans(explanation, chars) {
    const spans = explanation.spans;
    if (!Array.isArray(spans) || spans.length !== explanation.tokens.length) return null;
    let end = 0;
    for (const span of spans) {
      if (!Array.isArray(span) || !Number.isInteger(span[0]) || !Number.isInteger(span[1])) return null;
      if (span[0] < end || span[1] < span[0] || span[1] > chars.length) return null;
      end = span[1];
    }
    return spans;
  }

  // The text from its own characters, each token's span a shaded element and what lies between
  // tokens (spaces, characters the tokenizer drops) plain text. The spans are offsets in Unicode
  // code points (Python's str indices), so the text is indexed as Array.from(text): a JS string
  // counts an emoji beyond the BMP as two UTF-16 units, which would shift every later span.
  function sentence(explanation, detail) {
    const line = el("p", "sentence");
    line.dir = "auto"; // Arabic and Hebrew read right to left, whatever the page's direction
    const chars = Array.from(explanation.text);
    const spans = usableSpans(explanation, chars);
    const found = explanation.unread ? null : ngramsByToken(explanation);
    // The shade's strength is a token's part measured against the logit it goes into:
    //   strength = min(1, |part| / max(|logit|, 1)),  opacity = 0.7 × strength.
    // A part as large as the whole logit is full strength; a part a tenth of the logit is a tenth of
    // it, even when it is the text's largest (scaled to the text's own largest part, faint evidence,
    // and an unread text's <unk>, showed at full strength). The floor of 1 keeps a logit near 0
    // (parts cancelling out) from magnifying every part to full strength.
    const scale = explanation.unread ? null : Math.max(Math.abs(explanation.logit), 1);
    let selected = null;
    let cursor = 0;
    explanation.tokens.forEach(function (token, i) {
      const span = spans ? spans[i] : null;
      if (span && span[0] === span[1] && explanation.unread) return; // an unread text's placeholder <unk>
      const original = span && span[0] < span[1] ? chars.slice(span[0], span[1]).join("") : null;
      if (span) {
        if (span[0] > cursor) line.appendChild(document.createTextNode(chars.slice(cursor, span[0]).join("")));
        cursor = span[1];
      } else if (i > 0) {
        line.appendChild(document.createTextNode(" "));
      }
      const known = !Array.isArray(explanation.known) || explanation.known[i] !== false;
      const part = explanation.token_parts[i];
      let className = "token";
      if (!explanation.unread) className += part >= 0 ? " for" : " against";
      if (!known) className += " unknown";
      if (span && original === null) className += " placeholder"; // a token with no characters of its own
      const node = el("span", className, original === null ? token : original);
      const about = describeToken(explanation, i, found && found[i], original);
      node.title = about;
      node.setAttribute("aria-label", about);
      if (!explanation.unread) {
        const strength = Math.min(1, Math.abs(part) / scale);
        const colour = part >= 0 ? "33, 102, 172" : "214, 96, 77";
        // CSSOM, not a style attribute: allowed by style-src 'self'
        node.style.backgroundColor = "rgba(" + colour + ", " + (0.7 * strength).toFixed(3) + ")";
        node.dataset.part = String(part);
        node.tabIndex = 0; // an unread text's tokens say nothing more than the notice: no tab stop each
      }
      function show() {
        if (selected) selected.classList.remove("selected");
        selected = node;
        node.classList.add("selected");
        detail.textContent = about;
      }
      node.addEventListener("mouseenter", show);
      node.addEventListener("focus", show);
      line.appendChild(node);
    });
    if (spans && cursor < chars.length) line.appendChild(document.createTextNode(chars.slice(cursor).join("")));
    if (!spans && !explanation.tokens.length) line.textContent = explanation.text;
    return line;
  }

  // How much of the text the model knows: a line under the label, a warning below half, and for a
  // text it cannot read at all the notice that stands in for the label.
  function coverageLine(explanation) {
    if (explanation.unread) {
      return el("h2", "coverage unread", "Not read: none of its words are known to this model");
    }
    const share = explanation.coverage;
    if (typeof share !== "number") return null;
    // Rounded down (1e-9: 0.29 is 28.999... in binary), so a text with one unknown word never reads
    // "100%"; above 0, never "0%".
    const shown = share >= 1 ? "100%" : share < 0.01 ? "under 1%" : Math.floor(100 * share + 1e-9) + "%";
    if (share < 0.5) {
      return el("p", "coverage low", "Only " + shown + " of its words known to the model: the label rests on the few it knows");
    }
    return el("p", "coverage muted", shown + " of its words known to the model");
  }

  function ngramList(title, ngrams) {
    const section = el("div", "ngram-list");
    section.appendChild(el("h3", null, title));
    if (!ngrams.length) {
      section.appendChild(el("p", "muted", "none"));
      return section;
    }
    const list = el("ol");
    ngrams.forEach(function (ngram) {
      const item = el("li", null, "“");
      item.appendChild(el("bdi", null, ngramText(ngram))); // in its own direction, isolated from the quotes
      item.appendChild(document.createTextNode("” "));
      const where = isLinear(ngram) ? " (" + ngram.kind + ")" : " (feature map " + ngram.filter + ")";
      item.appendChild(el("span", "value", signed(ngram.contribution) + where));
      item.title = describeNgram(ngram);
      list.appendChild(item);
    });
    section.appendChild(list);
    return section;
  }

  // What each kind of member said alone, and its part in the combined logit: members of one kind
  // (a pooling, or the linear model) side by side, e.g. "max ×3 (weight 0.60): negative, 71%".
  function memberVerdicts(explanation) {
    const section = el("div", "members");
    section.appendChild(el("h3", null, "What the members said"));
    const byKind = {};
    const order = [];
    explanation.members.forEach(function (member) {
      const name = member.kind === "cnn" ? member.pooling + " pooling" : member.kind;
      if (!(name in byKind)) {
        byKind[name] = [];
        order.push(name);
      }
      byKind[name].push(member);
    });
    const list = el("ul");
    order.forEach(function (name) {
      const members = byKind[name];
      const weight = members.reduce(function (a, m) { return a + m.weight; }, 0);
      const part = members.reduce(function (a, m) {
        return a + m.token_parts.reduce(function (b, t) { return b + t; }, 0);
      }, 0);
      const said = members.map(function (m) {
        return m.label + " " + percent(m.probabilities[m.label]);
      });
      const item = el("li", null, name + (members.length > 1 ? " ×" + members.length : "") + " (weight " +
        weight.toFixed(2) + "): " + said.join(", "));
      item.appendChild(el("span", "value muted", "; words " + signed(part) + " in the " + explanation.label + " logit"));
      list.appendChild(item);
    });
    section.appendChild(list);
    return section;
  }

  function render(explanation) {
    const article = el("article", "result");
    const detail = el("p", "detail muted", "Hover or focus a word: its n-gram, feature map and value.");
    detail.setAttribute("aria-live", "polite");
    if (explanation.unread) {
      // No label, no bars, no parts: the model's output would be its biases alone.
      article.appendChild(coverageLine(explanation));
      const why = tokenizer && tokenizer.summary
        ? "This model reads text with the " + tokenizer.name + " tokenizer (" + tokenizer.summary + "), so it gives no label."
        : "It gives no label.";
      article.appendChild(el("p", "muted tokens-note", why));
      detail.textContent = "Hover a word: whether the model knows it.";
      const line = sentence(explanation, detail); // as typed, unshaded
      article.appendChild(line);
      if (line.querySelector(".token")) article.appendChild(detail); // a tokenizer that kept its words
      return article;
    }
    const chars = Array.from(explanation.text);
    const spans = usableSpans(explanation, chars);
    if (Array.isArray(explanation.labels)) return renderLabels(article, explanation, chars, spans);
    if (spans) placeNgrams(explanation, chars, spans);
    const heading = el("h2", "label", explanation.label + " ");
    heading.appendChild(el("span", "score", percent(explanation.probabilities[explanation.label])));
    article.appendChild(heading);
    const coverage = coverageLine(explanation);
    if (coverage) article.appendChild(coverage);
    article.appendChild(bars(explanation));
    splitNodes(explanation, spans, detail).forEach(function (node) {
      article.appendChild(node);
    });
    return article;
  }

  // One label's split (`explanation.label`'s): the text shaded by each token's part in its logit, the
  // detail line, the n-grams for and against it, what the members said, and the sum that checks it.
  function splitNodes(explanation, spans, detail) {
    const nodes = [];
    if (!spans) {
      // No spans to place the tokens in the text (an older server): the text as typed, then the tokens.
      const typed = el("blockquote", "typed");
      typed.appendChild(el("span", "muted", "typed: "));
      typed.appendChild(el("q", null, explanation.text));
      typed.lastChild.dir = "auto";
      nodes.push(typed);
      nodes.push(el("p", "muted tokens-note", "as the model reads it, shaded by each word's part:"));
    } else {
      nodes.push(el("p", "muted tokens-note", "as typed, each word shaded by its part in the " + explanation.label + " logit:"));
    }
    nodes.push(sentence(explanation, detail)); // as typed: markup shows as markup, inert
    nodes.push(detail);
    const lists = el("div", "ngrams");
    lists.appendChild(ngramList("For " + explanation.label, explanation.for));
    lists.appendChild(ngramList("Against " + explanation.label, explanation.against));
    nodes.push(lists);
    if (Array.isArray(explanation.members) && explanation.members.length) nodes.push(memberVerdicts(explanation));
    const parts = explanation.token_parts.reduce(function (a, b) {
      return a + b;
    }, 0);
    const check = el(
      "p",
      "check muted",
      "logit " + explanation.logit.toFixed(3) + " = words " + signed(parts) + " + output bias " +
        signed(explanation.output_bias) + " + filter biases " + signed(explanation.filter_bias) +
        (explanation.exact ? "" : " + residual " + signed(explanation.residual) + " (an approximate split)")
    );
    check.title = explanation.attribution; // how the logit was split, in the library's words
    nodes.push(check);
    return nodes;
  }

  // -- a multi-label model's explanation ----------------------------------------------------

  // Each label's own probability (they need not sum to 1), most probable first: the labels given
  // filled, the others grey, each bar marked at the label's threshold (/info's decision).
  function labelBars(explanation, given) {
    const grid = el("div", "bars");
    const probabilities = explanation.probabilities;
    const names = Object.keys(probabilities).sort(function (a, b) {
      return probabilities[b] - probabilities[a];
    });
    names.forEach(function (name) {
      const p = probabilities[name];
      const cut = thresholds && typeof thresholds[name] === "number" ? thresholds[name] : null;
      grid.appendChild(el("span", "name", name));
      const bar = el("div", "bar");
      bar.setAttribute("role", "img");
      bar.setAttribute("aria-label", name + " " + percent(p) + (cut === null ? "" : ", threshold " + percent(cut)));
      const fill = el("div", given.indexOf(name) >= 0 ? "fill top" : "fill");
      fill.style.width = (100 * p).toFixed(2) + "%"; // CSSOM: allowed by style-src 'self'
      bar.appendChild(fill);
      if (cut !== null) {
        const mark = el("span", "threshold");
        mark.style.left = (100 * cut).toFixed(2) + "%";
        mark.title = "threshold " + percent(cut);
        bar.appendChild(mark);
      }
      grid.appendChild(bar);
      grid.appendChild(el("span", "value", percent(p)));
    });
    return grid;
  }

  // A chip per label given, most probable first: choosing one shades the text by that label's split.
  // With none given, the text is shaded for the most probable label (the split at the top level).
  function renderLabels(article, explanation, chars, spans) {
    const probabilities = explanation.probabilities;
    const top = Object.keys(probabilities).reduce(function (a, b) {
      return probabilities[b] > probabilities[a] ? b : a;
    });
    // The members' verdicts are on the most probable label's logit: shown with its split only.
    const views = explanation.labels.map(function (given) {
      return Object.assign({}, explanation, given, { members: given.label === top ? explanation.members : null });
    });
    const fallback = Object.assign({}, explanation, { label: top, score: probabilities[top] });
    (views.length ? views : [fallback]).forEach(function (view) {
      if (spans) placeNgrams(view, chars, spans);
    });
    const heading = el("h2", "label chips");
    const split = el("div", "split");
    const chips = views.map(function (view, i) {
      const chip = el("button", "chip");
      chip.type = "button";
      chip.appendChild(el("span", "name", view.label));
      chip.appendChild(el("span", "score", percent(view.score)));
      chip.title = "Shade the text by each word's part in the " + view.label + " logit";
      chip.addEventListener("click", function () {
        select(i);
      });
      heading.appendChild(chip);
      return chip;
    });
    function select(i) {
      chips.forEach(function (chip, j) {
        chip.setAttribute("aria-pressed", String(i === j));
        chip.classList.toggle("selected", i === j);
      });
      const detail = el("p", "detail muted", "Hover or focus a word: its n-gram, feature map and value.");
      detail.setAttribute("aria-live", "polite");
      split.replaceChildren.apply(split, splitNodes(i === null ? fallback : views[i], spans, detail));
    }
    if (!views.length) heading.appendChild(el("span", "none", "No label: none reaches its threshold"));
    article.appendChild(heading);
    const coverage = coverageLine(explanation);
    if (coverage) article.appendChild(coverage);
    article.appendChild(labelBars(explanation, views.map(function (view) { return view.label; })));
    if (!views.length) {
      article.appendChild(el("p", "muted tokens-note", "Shaded for the most probable label, " + top + "."));
    }
    article.appendChild(split);
    select(views.length ? 0 : null);
    return article;
  }

  // -- the form ------------------------------------------------------------------------------

  async function explain() {
    clearMessage();
    const lines = [];
    const texts = [];
    box.value.split("\n").forEach(function (text, i) {
      if (text.trim()) {
        texts.push(text);
        lines.push(i + 1);
      }
    });
    if (!texts.length) {
      showMessage("Type a text first: the box is empty (or only spaces).");
      box.focus();
      return;
    }
    if (maxTexts && texts.length > maxTexts) {
      showMessage("Too many texts: " + texts.length + " lines, at most " + maxTexts + " at a time.");
      return;
    }
    button.disabled = true;
    button.textContent = "Explaining…";
    try {
      const body = texts.length === 1 ? { text: texts[0] } : { texts: texts };
      const answer = await getJSON("/explain", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      results.replaceChildren.apply(results, answer.explanations.map(render));
    } catch (error) {
      showMessage(error.status ? describeError(error.status, error.body, lines) : error.message);
    } finally {
      button.disabled = false;
      button.textContent = "Explain";
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    explain();
  });
  box.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      explain();
    }
  });
  loadCard();
})();
