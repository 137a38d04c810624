// The page of textcnn's service: the model card from GET /info, and for each text typed, POST
// /explain's label, a bar per class and the tokens shaded by their part in the label's logit.
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
    const rows = [
      ["Dataset", data.dataset],
      ["Pooling", (model.pooling || {}).name || config.pooling, (model.pooling || {}).summary], // summary on hover
      ["Members", describeMembers(model.members)],
      ["Variant", config.variant],
      ["Test accuracy", typeof test.accuracy === "number" ? percent(test.accuracy) : null],
      ["Vocabulary", typeof model.vocab_size === "number" ? model.vocab_size.toLocaleString("en") + " words" : null],
      ["Labels", Array.isArray(model.labels) ? model.labels.join(", ") : null],
      ["Model", model.id],
    ];
    const list = el("dl");
    rows.forEach(function (row) {
      const item = el("div", "item");
      item.appendChild(el("dt", null, row[0]));
      const value = el("dd", null, row[1] === undefined || row[1] === null ? "—" : row[1]);
      if (row[2]) value.title = row[2];
      item.appendChild(value);
      list.appendChild(item);
    });
    card.replaceChildren(list);
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

  function isLinear(ngram) {
    return ngram.kind !== null && ngram.kind !== undefined && ngram.kind !== "cnn";
  }

  function describeNgram(ngram) {
    if (isLinear(ngram)) {
      // A linear member's n-gram: its feature value times its weight, times the member's weight.
      return "“" + ngram.ngram + "” (" + ngram.kind + " member " + ngram.member + ", a " + ngram.width +
        "-gram): value " + ngram.activation.toFixed(3) + " × weight " + ngram.weight.toFixed(3) + " = " +
        signed(ngram.activation * ngram.weight) + ", a share of " + signed(ngram.contribution) +
        " in the members' weighted mean logit";
    }
    const where = "“" + ngram.ngram + "” (width " + ngram.width + ", feature map " + ngram.filter +
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

  function describeToken(explanation, i, found) {
    const part = explanation.token_parts[i];
    let text = "“" + explanation.tokens[i] + "”: " + signed(part) + (part >= 0 ? " for " : " against ") + explanation.label;
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

  function sentence(explanation, detail) {
    const line = el("p", "sentence");
    const scale = Math.max.apply(null, explanation.token_parts.map(Math.abs).concat([1e-9]));
    const found = ngramsByToken(explanation);
    let selected = null;
    explanation.tokens.forEach(function (token, i) {
      const part = explanation.token_parts[i];
      const span = el("span", "token " + (part >= 0 ? "for" : "against"), token);
      const strength = Math.min(1, Math.abs(part) / scale);
      const colour = part >= 0 ? "33, 102, 172" : "214, 96, 77";
      span.style.backgroundColor = "rgba(" + colour + ", " + (0.08 + 0.62 * strength).toFixed(3) + ")";
      const about = describeToken(explanation, i, found[i]);
      span.title = about;
      span.tabIndex = 0;
      span.setAttribute("aria-label", about);
      span.dataset.part = String(part);
      function show() {
        if (selected) selected.classList.remove("selected");
        selected = span;
        span.classList.add("selected");
        detail.textContent = about;
      }
      span.addEventListener("mouseenter", show);
      span.addEventListener("focus", show);
      line.appendChild(span);
      if (i < explanation.tokens.length - 1) line.appendChild(document.createTextNode(" "));
    });
    return line;
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
      const item = el("li", null, "“" + ngram.ngram + "” ");
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
    const heading = el("h2", "label", explanation.label + " ");
    heading.appendChild(el("span", "score", percent(explanation.probabilities[explanation.label])));
    article.appendChild(heading);
    article.appendChild(bars(explanation));
    const typed = el("blockquote", "typed");
    typed.appendChild(el("span", "muted", "typed: "));
    typed.appendChild(el("q", null, explanation.text)); // as typed: markup shows as markup, inert
    article.appendChild(typed);
    article.appendChild(el("p", "muted tokens-note", "as the model reads it, shaded by each word's part:"));
    const detail = el("p", "detail muted", "Hover or focus a word: its n-gram, feature map and value.");
    detail.setAttribute("aria-live", "polite");
    article.appendChild(sentence(explanation, detail));
    article.appendChild(detail);
    const lists = el("div", "ngrams");
    lists.appendChild(ngramList("For " + explanation.label, explanation.for));
    lists.appendChild(ngramList("Against " + explanation.label, explanation.against));
    article.appendChild(lists);
    if (Array.isArray(explanation.members) && explanation.members.length) article.appendChild(memberVerdicts(explanation));
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
    article.appendChild(check);
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
