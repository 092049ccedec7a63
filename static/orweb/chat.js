/* orweb chat pages: the websocket client, the composer, the model picker and copy buttons.
 *
 * Safety rule: model text reaches the page only as text nodes (textContent) while it streams; the one
 * use of innerHTML is the server's sanitised render (chat.render) from a "done"/"message" frame or a
 * transcript fetched from our own server.
 */
(() => {
  "use strict";

  const LIVE = new Set(["pending", "streaming"]);
  const RETRYABLE = new Set(["error", "incomplete", "stopped"]);
  const CLOSE_CODES = { 4401: "You are signed out. Sign in again to continue.", 4403: "This conversation isn't yours or no longer exists." };

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["x-csrftoken"] || "";
    } catch (_) {
      return "";
    }
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /* Display only (the server keeps money as Decimal): the same rules as the `usd` template filter. */
  function formatCost(value) {
    if (value === undefined || value === null || value === "") return "";
    const n = Number(value);
    if (!Number.isFinite(n)) return "$" + value;
    if (n === 0) return "$0";
    if (Math.abs(n) >= 1) return "$" + n.toFixed(2);
    const trimmed = n.toFixed(Math.abs(n) >= 0.01 ? 4 : 10).replace(/0+$/, "").replace(/\.$/, "");
    return "$" + trimmed;
  }

  /* ---------- one message's DOM ---------- */

  function metaSpans(meta) {
    const spans = [];
    if (meta.model) spans.push(el("span", "", meta.model));
    if (meta.provider) spans.push(el("span", "", "via " + meta.provider));
    spans.push(el("span", "", (meta.prompt_tokens || 0) + " in / " + (meta.completion_tokens || 0) + " out"));
    spans.push(el("span", "", formatCost(meta.cost || 0)));
    if (meta.ttft_ms !== undefined && meta.ttft_ms !== null) spans.push(el("span", "", "TTFT " + meta.ttft_ms + " ms"));
    if (meta.tokens_per_second !== undefined && meta.tokens_per_second !== null) {
      spans.push(el("span", "", Number(meta.tokens_per_second).toFixed(1) + " tok/s"));
    }
    if (meta.skipped && meta.skipped.length) {
      const why = meta.skipped.map((s) => (Array.isArray(s) ? s[0] + " (" + s[1] + ")" : String(s))).join(", ");
      spans.push(el("span", "skipped", "skipped: " + why));
    }
    return spans;
  }

  function toolCallNode(call) {
    const details = el("details", "tool-call");
    const summary = el("summary");
    summary.append(el("span", "tool-name", call.name), el("code", "tool-args", call.arguments));
    details.append(summary, el("pre", "tool-result", call.result));
    return details;
  }

  function versionSwitcher(v) {
    const box = el("span", "versions");
    box.setAttribute("aria-label", "Version " + v.index + " of " + v.count);
    const prev = el("button", "btn-icon", "‹");
    prev.type = "button";
    prev.dataset.switch = v.prev_id || "";
    prev.disabled = !v.prev_id;
    prev.setAttribute("aria-label", "Previous version");
    const next = el("button", "btn-icon", "›");
    next.type = "button";
    next.dataset.switch = v.next_id || "";
    next.disabled = !v.next_id;
    next.setAttribute("aria-label", "Next version");
    const label = el("span", "", v.index + "/" + v.count);
    label.dataset.versionLabel = "";
    box.append(prev, label, next);
    return box;
  }

  function actionButton(name, label, hidden) {
    const b = el("button", "btn btn-ghost btn-small", label);
    b.type = "button";
    b.dataset[name] = "";
    b.hidden = hidden;
    return b;
  }

  /* Build a message element from a "message" frame, with the same structure as chat/_message.html. */
  function buildMessage(msg) {
    const live = LIVE.has(msg.status);
    const article = el("article", "msg msg-" + msg.role);
    article.id = "msg-" + msg.id;
    article.dataset.id = msg.id;
    article.dataset.role = msg.role;
    article.dataset.status = msg.status;
    article.dataset.seq = msg.seq || 0;
    if (msg.role === "user") article.dataset.raw = msg.content_text || "";
    const head = el("header", "msg-head");
    const meta = msg.meta || {};
    head.append(el("span", "msg-role", msg.role === "user" ? "You" : meta.model || meta.requested_model || "Assistant"));
    if (msg.versions && msg.versions.count > 1) head.append(versionSwitcher(msg.versions));
    const status = el("span", "msg-status status-" + msg.status, msg.status === "complete" ? "" : msg.status);
    status.dataset.statusLabel = "";
    head.append(status);
    article.append(head);
    if (msg.attachments && msg.attachments.length) {
      const box = el("div", "msg-attachments");
      for (const a of msg.attachments) {
        const img = el("img");
        img.src = "/chat/attachments/" + Number(typeof a === "object" ? a.id : a);
        img.alt = (typeof a === "object" && a.name) || "attached image";
        box.append(img);
      }
      article.append(box);
    }
    const tools = el("div", "msg-tools");
    tools.dataset.tools = "";
    for (const call of msg.tool_calls || []) tools.append(toolCallNode(call));
    const body = el("div", "msg-body prose");
    body.dataset.body = "";
    body.innerHTML = msg.html || ""; // server-sanitised (chat.render.render_markdown)
    if (live) {
      // A live reply's frame has its checkpoint as HTML (up to msg.seq); raw deltas follow it.
      const text = el("div", "live-text");
      text.dataset.live = "";
      body.append(text);
    }
    const error = el("p", "msg-error", msg.error || "");
    error.dataset.error = "";
    error.setAttribute("role", "alert");
    error.hidden = !msg.error;
    article.append(tools, body, error);
    if (msg.role === "assistant") {
      const footer = el("footer", "msg-meta muted");
      footer.dataset.meta = "";
      if (!live && msg.meta) footer.append(...metaSpans(msg.meta));
      article.append(footer);
    }
    const actions = el("div", "msg-actions");
    if (msg.role === "user") {
      actions.append(actionButton("edit", "Edit", false));
    } else {
      actions.append(
        actionButton("stop", "Stop", !live),
        actionButton("regenerate", "Regenerate", live),
        actionButton("continue", "Continue", !RETRYABLE.has(msg.status)),
      );
    }
    article.append(actions);
    return article;
  }

  function setStatus(article, status) {
    article.dataset.status = status;
    const label = article.querySelector("[data-status-label]");
    if (label) {
      label.className = "msg-status status-" + status;
      label.textContent = status === "complete" ? "" : status;
    }
    const live = LIVE.has(status);
    const toggle = (sel, hidden) => {
      const b = article.querySelector(sel);
      if (b) b.hidden = hidden;
    };
    toggle("[data-stop]", !live);
    toggle("[data-regenerate]", live);
    toggle("[data-continue]", !RETRYABLE.has(status));
  }

  function liveText(article) {
    let node = article.querySelector("[data-live]");
    if (!node) {
      const body = article.querySelector("[data-body]");
      node = el("div", "live-text");
      node.dataset.live = "";
      body.replaceChildren(node);
    }
    return node;
  }

  /* ---------- a conversation over its websocket ---------- */

  class ChatClient {
    constructor(root) {
      this.root = root;
      this.id = root.dataset.conversation;
      this.transcript = root.querySelector("[data-transcript]");
      this.alertBox = root.querySelector("[data-alert]") || document.querySelector("[data-alert]");
      this.conn = root.querySelector("[data-conn]");
      this.seqs = new Map(); // message id -> last applied seq
      this.resuming = new Set();
      this.attempt = 0;
      this.closedForGood = false;
      this.queue = [];
      root.addEventListener("click", (ev) => this.onClick(ev));
      this.connect();
    }

    url() {
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      return proto + "//" + location.host + "/ws/chat/" + encodeURIComponent(this.id) + "/";
    }

    connect() {
      this.setConn("connecting…");
      const ws = new WebSocket(this.url());
      this.ws = ws;
      ws.addEventListener("open", () => {
        this.attempt = 0;
        this.setConn("live");
        this.resumeAll();
        for (const frame of this.queue.splice(0)) ws.send(JSON.stringify(frame));
      });
      ws.addEventListener("message", (ev) => {
        let frame;
        try {
          frame = JSON.parse(ev.data);
        } catch (_) {
          return;
        }
        this.onFrame(frame);
      });
      ws.addEventListener("close", (ev) => {
        if (this.ws !== ws) return;
        if (CLOSE_CODES[ev.code]) {
          this.closedForGood = true;
          this.setConn("disconnected");
          this.showAlert(CLOSE_CODES[ev.code]);
          return;
        }
        this.setConn("reconnecting…");
        const delay = Math.min(10000, 300 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
        this.attempt += 1;
        setTimeout(() => this.connect(), delay);
      });
    }

    setConn(text) {
      if (this.conn) this.conn.textContent = text;
      this.root.dataset.socket = text;
    }

    send(frame) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) {
        this.ws.send(JSON.stringify(frame));
        return true;
      }
      if (this.closedForGood) return false;
      this.queue.push(frame);
      return true;
    }

    article(id) {
      return this.transcript.querySelector('article[data-id="' + Number(id) + '"]');
    }

    lastSeq(article) {
      const id = article.dataset.id;
      if (!this.seqs.has(id)) this.seqs.set(id, Number(article.dataset.seq || 0));
      return this.seqs.get(id);
    }

    /* After (re)connecting: ask for every live message's deltas after what the page already has. */
    resumeAll() {
      for (const article of this.transcript.querySelectorAll("article.msg")) {
        if (LIVE.has(article.dataset.status)) this.resume(article);
      }
      this.updateStopButton();
    }

    resume(article) {
      this.resuming.add(article.dataset.id);
      this.send({ action: "resume", message_id: Number(article.dataset.id), after_seq: this.lastSeq(article) });
    }

    onFrame(frame) {
      switch (frame.type) {
        case "message":
          return this.onMessage(frame.message);
        case "delta":
          return this.onDelta(frame);
        case "tool":
          return this.onTool(frame);
        case "done":
          return this.onDone(frame);
        case "error":
          if (this.onRefused) this.onRefused();
          return this.showAlert(frame.message || "Something went wrong.");
        case "branch":
          return this.onBranch(frame.messages || []);
        case "title":
          return this.onTitle(frame.title);
        case "budget":
          return updateSpend(frame);
        default:
          return undefined;
      }
    }

    onMessage(msg) {
      if (msg.role === "user" && this.onAccepted) this.onAccepted();
      const existing = this.article(msg.id);
      if (existing) {
        this.refreshMessage(existing, msg);
      } else {
        this.insertMessage(msg);
      }
      this.updateStopButton();
    }

    /* A new message continues the branch at its parent: anything shown after the parent belongs to
     * the branch we left (regenerate / edit), so it goes. */
    insertMessage(msg) {
      const empty = this.transcript.querySelector("[data-empty]");
      if (empty) empty.remove();
      if (msg.parent_id) {
        const parent = this.article(msg.parent_id);
        if (!parent) {
          this.reloadTranscript();
          return;
        }
        while (parent.nextElementSibling) parent.nextElementSibling.remove();
      } else {
        this.transcript.replaceChildren();
      }
      const article = buildMessage(msg);
      this.seqs.set(String(msg.id), Number(msg.seq || 0));
      this.transcript.append(article);
      article.scrollIntoView({ block: "nearest" });
    }

    refreshMessage(article, msg) {
      if (LIVE.has(msg.status) && LIVE.has(article.dataset.status)) {
        setStatus(article, msg.status);
        return; // keep the live text: deltas own it until "done"
      }
      const fresh = buildMessage(msg);
      article.replaceWith(fresh);
      this.seqs.set(String(msg.id), Number(msg.seq || 0));
    }

    onDelta(frame) {
      const article = this.article(frame.message_id);
      if (!article || !LIVE.has(article.dataset.status)) return; // a late delta after "done" changes nothing
      const id = article.dataset.id;
      const last = this.lastSeq(article);
      if (frame.seq <= last) return; // already shown (replay overlap or a second tab's resume)
      if (frame.seq > last + 1) {
        if (!this.resuming.has(id)) this.resume(article); // a gap: fetch what we missed
        return;
      }
      this.resuming.delete(id);
      this.seqs.set(id, frame.seq);
      article.dataset.seq = frame.seq;
      if (article.dataset.status === "pending") setStatus(article, "streaming");
      liveText(article).append(document.createTextNode(frame.text));
      this.updateStopButton();
    }

    onTool(frame) {
      const article = this.article(frame.message_id);
      if (!article) return;
      article.querySelector("[data-tools]").append(toolCallNode(frame.call || {}));
    }

    onDone(frame) {
      const article = this.article(frame.message_id);
      if (article) {
        setStatus(article, frame.status);
        const body = article.querySelector("[data-body]");
        if (typeof frame.html === "string") body.innerHTML = frame.html; // server-sanitised
        const error = article.querySelector("[data-error]");
        error.textContent = frame.error || "";
        error.hidden = !frame.error;
        const meta = article.querySelector("[data-meta]");
        if (meta && frame.meta) meta.replaceChildren(...metaSpans(frame.meta));
        if (frame.meta && frame.meta.model) article.querySelector(".msg-role").textContent = frame.meta.model;
        this.seqs.delete(article.dataset.id);
        this.resuming.delete(article.dataset.id);
      }
      if (frame.conversation_cost !== undefined) {
        const cost = this.root.querySelector("[data-conversation-cost]");
        if (cost) cost.textContent = formatCost(frame.conversation_cost);
      }
      this.updateStopButton();
    }

    onTitle(title) {
      const h = this.root.querySelector("[data-title]");
      if (h && title) {
        h.textContent = title;
        document.title = title + " · orweb";
      }
    }

    liveMessage() {
      const all = this.transcript.querySelectorAll('article.msg[data-role="assistant"]');
      for (let i = all.length - 1; i >= 0; i--) if (LIVE.has(all[i].dataset.status)) return all[i];
      return null;
    }

    updateStopButton() {
      const button = this.root.querySelector("[data-stop-current]");
      if (button) button.hidden = !this.liveMessage();
    }

    stopCurrent() {
      const live = this.liveMessage();
      if (live) this.send({ action: "stop", message_id: Number(live.dataset.id) });
      return Boolean(live);
    }

    showAlert(text) {
      if (!this.alertBox) return;
      this.alertBox.textContent = text;
      this.alertBox.hidden = false;
      clearTimeout(this.alertTimer);
      this.alertTimer = setTimeout(() => {
        this.alertBox.hidden = true;
      }, 12000);
    }

    async reloadTranscript() {
      const url = this.root.dataset.transcriptUrl;
      if (!url) return;
      const response = await fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" });
      if (response.ok) this.swapTranscript(await response.text());
    }

    swapTranscript(html) {
      const holder = document.createElement("div");
      holder.innerHTML = html; // our own server's render of the transcript (sanitised per message)
      const fresh = holder.querySelector("[data-transcript]");
      if (!fresh) return;
      this.transcript.replaceWith(fresh);
      this.transcript = fresh;
      this.seqs.clear();
      this.resuming.clear();
      this.resumeAll();
    }

    /* The shown branch changed (a version switch in this or another tab): rebuild from the frame. */
    onBranch(messages) {
      const kept = (msg) => {
        const shown = this.article(msg.id);
        return shown && LIVE.has(shown.dataset.status) && LIVE.has(msg.status) ? shown : null;
      };
      const nodes = messages.map((msg) => {
        const node = kept(msg); // a live reply keeps its text and position
        if (node) return node;
        this.seqs.set(String(msg.id), Number(msg.seq || 0));
        return buildMessage(msg);
      });
      this.transcript.replaceChildren(...nodes);
      for (const id of [...this.seqs.keys()]) if (!this.article(id)) this.seqs.delete(id);
      this.resumeAll();
    }

    onClick(ev) {
      const target = ev.target.closest("button");
      if (!target || !this.root.contains(target)) return;
      const article = target.closest("article.msg");
      const id = article ? Number(article.dataset.id) : null;
      if (target.matches("[data-stop]")) this.send({ action: "stop", message_id: id });
      else if (target.matches("[data-stop-current]")) this.stopCurrent();
      else if (target.matches("[data-regenerate]")) this.send({ action: "regenerate", message_id: id });
      else if (target.matches("[data-continue]")) this.send({ action: "continue", message_id: id });
      else if (target.matches("[data-switch]") && target.dataset.switch) {
        this.send({ action: "switch", message_id: Number(target.dataset.switch) });
      }
      else if (target.matches("[data-edit]")) this.openEditor(article);
    }

    openEditor(article) {
      if (article.querySelector(".editor")) return;
      const form = el("form", "editor stack");
      const area = el("textarea");
      area.value = article.dataset.raw || "";
      area.rows = Math.min(12, Math.max(2, area.value.split("\n").length));
      area.setAttribute("aria-label", "Edit message");
      const bar = el("div", "row");
      const save = el("button", "btn btn-primary btn-small", "Save & send");
      save.type = "submit";
      const cancel = el("button", "btn btn-small", "Cancel");
      cancel.type = "button";
      bar.append(save, cancel);
      form.append(area, bar);
      const body = article.querySelector("[data-body]");
      body.hidden = true;
      body.after(form);
      const close = () => {
        form.remove();
        body.hidden = false;
      };
      cancel.addEventListener("click", close);
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const content = area.value;
        if (!content.trim()) return;
        if (this.send({ action: "edit", message_id: Number(article.dataset.id), content })) close();
      });
      area.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
          ev.preventDefault();
          form.requestSubmit();
        } else if (ev.key === "Escape") {
          ev.stopPropagation();
          close();
        }
      });
      area.focus();
    }
  }

  /* ---------- the composer: Enter sends, Shift+Enter new line, image attachments ---------- */

  function wireComposer(client) {
    const form = client.root.querySelector("[data-composer]");
    if (!form) return;
    const prompt = form.querySelector("[data-prompt]");
    const files = form.querySelector("[data-files]");
    const picker = form.querySelector("[data-attach]");
    const attached = new Map(); // attachment id -> chip

    let draft = null; // what was sent, until the server takes it: a refusal puts it back

    const clearFiles = () => {
      attached.clear();
      files.replaceChildren();
      files.hidden = true;
    };
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const content = prompt.value;
      if (!content.trim() && attached.size === 0) return;
      const frame = { action: "send", content, attachments: [...attached.keys()] };
      if (!client.send(frame)) return;
      draft = { content, chips: new Map(attached) };
      prompt.value = "";
      clearFiles();
    });
    client.onAccepted = () => {
      draft = null;
    };
    client.onRefused = () => {
      if (!draft || prompt.value.trim() || attached.size) return;
      prompt.value = draft.content;
      for (const [id, chip] of draft.chips) {
        attached.set(id, chip);
        files.append(chip);
      }
      files.hidden = attached.size === 0;
      draft = null;
      prompt.focus();
    };
    prompt.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        form.requestSubmit();
      }
    });
    picker.addEventListener("change", async () => {
      const file = picker.files && picker.files[0];
      picker.value = "";
      if (!file) return;
      const data = new FormData();
      data.append("file", file);
      const response = await fetch(client.root.dataset.uploadUrl, {
        method: "POST",
        body: data,
        headers: { "X-CSRFToken": csrfToken() },
        credentials: "same-origin",
      });
      const answer = await response.json().catch(() => ({}));
      if (!response.ok) {
        client.showAlert(answer.error || "That image couldn't be attached.");
        return;
      }
      const chip = el("span", "file-chip", answer.name + " (" + Math.ceil(answer.size / 1024) + " KB)");
      chip.dataset.attachment = answer.id;
      const remove = el("button", "btn-icon", "×");
      remove.type = "button";
      remove.setAttribute("aria-label", "Remove " + answer.name);
      remove.addEventListener("click", () => {
        attached.delete(answer.id);
        chip.remove();
        files.hidden = attached.size === 0;
      });
      chip.append(remove);
      attached.set(answer.id, chip);
      files.append(chip);
      files.hidden = false;
      prompt.focus();
    });
  }

  function updateSpend(frame) {
    const box = document.getElementById("spend");
    if (!box) return;
    const spent = box.querySelector("[data-spent]");
    const remaining = box.querySelector("[data-remaining]");
    if (spent && frame.spent !== undefined) spent.textContent = formatCost(frame.spent);
    if (remaining && frame.remaining !== undefined && frame.remaining !== null) remaining.textContent = formatCost(frame.remaining);
  }

  /* ---------- model picker: search and filters, client-side over the server-rendered list ---------- */

  function wirePicker(picker) {
    const search = picker.querySelector("[data-picker-search]");
    const rows = [...picker.querySelectorAll("[data-model-row]")];
    const none = picker.querySelector("[data-picker-none]");
    const filter = (name) => picker.querySelector('[data-filter="' + name + '"]');
    const apply = () => {
      const words = (search.value || "").toLowerCase().split(/\s+/).filter(Boolean);
      const images = filter("images") && filter("images").checked;
      const tools = filter("tools") && filter("tools").checked;
      const minContext = Number((filter("context") && filter("context").value) || 0);
      const priceValue = filter("price") ? filter("price").value : "";
      let shown = 0;
      for (const row of rows) {
        const name = row.dataset.name.toLowerCase();
        const context = Number(row.dataset.context || 0);
        const price = row.dataset.price;
        const auto = row.querySelector("input").value.startsWith("orweb/auto");
        let ok = words.every((w) => name.includes(w));
        if (images && row.dataset.images !== "1") ok = false;
        if (tools && row.dataset.tools !== "1") ok = false;
        if (minContext && !auto && context < minContext) ok = false;
        if (priceValue !== "" && !auto && (price === "" || Number(price) > Number(priceValue))) ok = false;
        const checked = row.querySelector("input").checked;
        row.hidden = !ok && !checked;
        if (!row.hidden) shown += 1;
      }
      if (none) none.hidden = shown > 0;
    };
    picker.addEventListener("input", apply);
    picker.addEventListener("change", apply);
    search.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") ev.preventDefault();
    });
    apply();
  }

  /* ---------- copy buttons on code blocks ---------- */

  document.addEventListener("click", async (ev) => {
    const button = ev.target.closest("button[data-copy]");
    if (!button) return;
    const code = button.parentElement.querySelector("pre code, pre");
    if (!code) return;
    try {
      await navigator.clipboard.writeText(code.textContent);
      button.textContent = "Copied";
    } catch (_) {
      button.textContent = "Select and copy";
    }
    setTimeout(() => {
      button.textContent = "Copy";
    }, 1500);
  });

  /* ---------- start ---------- */

  const clients = [...document.querySelectorAll("[data-chat]")].map((root) => {
    const client = new ChatClient(root);
    wireComposer(client);
    return client;
  });
  window.orwebChat = clients;

  document.addEventListener("keydown", (ev) => {
    if (ev.key !== "Escape" || ev.defaultPrevented) return;
    for (const client of clients) client.stopCurrent();
  });

  document.querySelectorAll("[data-picker]").forEach(wirePicker);
})();
