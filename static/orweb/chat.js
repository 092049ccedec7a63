/* orweb chat pages: the websocket client, the composer, the model picker and copy buttons.
 *
 * A message's markup comes only from the server (chat/_message.html, in the page and in "message",
 * "done" and "branch" frames); this file swaps it in whole. Safety rule: model text reaches the page only
 * as text nodes (textContent) while it streams; markup is parsed only from our own server's render,
 * where model output is sanitised (chat.render) and everything else escaped.
 */
(() => {
  "use strict";

  const LIVE = new Set(["pending", "streaming"]);
  const CLOSE_CODES = {
    4401: "You are signed out. Sign in again to continue.",
    4403: "This conversation isn't yours or no longer exists.",
    4429: "This tab sent too many frames and was closed. Reload the page to continue.",
  };

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

  /* A server-rendered element (chat/_message.html, chat/_spend.html, ...) from a frame's `html`. */
  function fromHtml(html) {
    const holder = document.createElement("template");
    holder.innerHTML = html || ""; // our own server's render: model output sanitised, the rest escaped
    return holder.content.firstElementChild;
  }

  /* A live message going from pending to streaming; everything else about it comes from the server. */
  function setStatus(article, status) {
    article.dataset.status = status;
    const label = article.querySelector("[data-status-label]");
    if (label) {
      label.className = "msg-status status-" + status;
      label.textContent = status;
    }
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
      this.scrollToLatest();
      this.connect();
    }

    /* A conversation opens at its latest message, as a chat app does. */
    scrollToLatest() {
      const last = this.transcript.lastElementChild;
      if (last) last.scrollIntoView({ block: "end" });
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
          this.showAlert(this.closeReason || CLOSE_CODES[ev.code]);
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
        case "reasoning":
          return this.onReasoning(frame);
        case "done":
          return this.onDone(frame);
        case "error":
          if (frame.code === "signed_out" || frame.code === "flooding") this.closeReason = frame.message;
          if (this.onRefused) this.onRefused();
          return this.showAlert(frame.message || "Something went wrong.");
        case "notice":
          return this.onNotice(frame);
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
      const article = fromHtml(msg.html);
      if (!article) return;
      this.seqs.set(String(msg.id), Number(msg.seq || 0));
      this.transcript.append(article);
      article.scrollIntoView({ block: "nearest" });
    }

    refreshMessage(article, msg) {
      if (LIVE.has(msg.status) && LIVE.has(article.dataset.status)) {
        setStatus(article, msg.status);
        return; // keep the live text: deltas own it until "done"
      }
      const fresh = fromHtml(msg.html);
      if (!fresh) return;
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
      const live = article.querySelector("[data-live]");
      if (live) live.append(document.createTextNode(frame.text));
      this.updateStopButton();
    }

    /* The model's thinking, live: text nodes only, into the message's folded Thinking block. */
    onReasoning(frame) {
      const article = this.article(frame.message_id);
      if (!article || !LIVE.has(article.dataset.status)) return;
      const block = article.querySelector("[data-thinking]");
      if (!block) return;
      block.hidden = false;
      block.querySelector("[data-thinking-text]").append(document.createTextNode(frame.text));
    }

    onTool(frame) {
      const article = this.article(frame.message_id);
      if (!article) return;
      const call = fromHtml(frame.html);
      if (call) article.querySelector("[data-tools]").append(call);
    }

    onDone(frame) {
      const article = this.article(frame.message_id);
      const fresh = fromHtml(frame.html);
      if (article && fresh) {
        article.replaceWith(fresh);
        this.seqs.delete(String(frame.message_id));
        this.resuming.delete(String(frame.message_id));
      }
      if (this.onSettled) this.onSettled();
      if (frame.conversation_cost_shown !== undefined) {
        const cost = this.root.querySelector("[data-conversation-cost]");
        if (cost) cost.textContent = frame.conversation_cost_shown;
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

    /* A reply refused before any call (budget, rate limit, policy): taken back on the server; the reason
     * stays in the composer until dismissed, and the tab that sent it gets its text back. */
    onNotice(frame) {
      const notice = this.root.querySelector("[data-notice]");
      if (notice) {
        notice.querySelector("[data-notice-text]").textContent = frame.message || "Not sent.";
        notice.dataset.code = frame.code || "";
        notice.hidden = false;
      }
      if (frame.restore && this.onRestore) this.onRestore();
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
      const fresh = fromHtml(html);
      if (!fresh || !fresh.matches("[data-transcript]")) return;
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
        return fromHtml(msg.html);
      }).filter(Boolean);
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
      else if (target.matches("[data-dismiss-notice]")) {
        target.closest("[data-notice]").hidden = true;
        const prompt = this.root.querySelector("[data-prompt]");
        if (prompt) prompt.focus();
      }
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
    let accepted = null; // what the server took, until its reply starts: a "notice" may still put it back

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
      accepted = draft;
      draft = null;
    };
    client.onSettled = () => {
      accepted = null;
    };
    client.onRestore = () => {
      if (accepted && !draft) draft = accepted;
      accepted = null;
      client.onRefused();
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
    wireEstimate(form, prompt, () => [...attached.keys()]);
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
      if (response.status === 413) {
        client.showAlert("That file is too large to attach.");
        return;
      }
      if (!response.ok) {
        client.showAlert(answer.error || "That file couldn't be attached.");
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
      form.dispatchEvent(new Event("orweb:attachments"));
      prompt.focus();
    });
  }

  /* The price before Send: as the draft changes (debounced), the server prices it as a send would. */
  function wireEstimate(form, prompt, attachmentIds) {
    const shown = form.querySelector("[data-estimate]");
    const url = form.dataset.estimateUrl;
    if (!shown || !url) return;
    let timer = null;
    let asked = 0;
    const ask = async () => {
      const content = prompt.value;
      const attachments = attachmentIds();
      if (!content.trim() && !attachments.length) {
        shown.textContent = "";
        return;
      }
      const mine = ++asked;
      try {
        const response = await fetch(url, {
          method: "POST",
          body: JSON.stringify({ content, attachments }),
          headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
          credentials: "same-origin",
        });
        const answer = await response.json();
        if (mine !== asked) return; // a newer draft was asked about meanwhile
        shown.textContent = answer.text || "";
        shown.dataset.ok = answer.ok ? "1" : "0";
      } catch (_) {
        if (mine === asked) shown.textContent = "";
      }
    };
    const later = () => {
      clearTimeout(timer);
      timer = setTimeout(ask, 400);
    };
    prompt.addEventListener("input", later);
    form.addEventListener("orweb:attachments", later);
    form.addEventListener("submit", () => {
      clearTimeout(timer);
      asked += 1;
      shown.textContent = "";
    });
  }

  /* Compare: the price of the prompt with each chosen model. */
  function wireCompareEstimate(form) {
    const url = form.dataset.estimateUrl;
    if (!url) return;
    let timer = null;
    let asked = 0;
    const ask = async () => {
      const mine = ++asked;
      const data = new FormData(form);
      const response = await fetch(url, {
        method: "POST",
        body: data,
        headers: { "X-CSRFToken": csrfToken() },
        credentials: "same-origin",
      }).catch(() => null);
      if (!response || mine !== asked) return;
      const answer = await response.json().catch(() => ({}));
      for (const slot of form.querySelectorAll("[data-model-estimate]")) {
        const found = (answer.models || {})[slot.dataset.modelEstimate];
        slot.textContent = found ? found.text : "";
      }
    };
    const later = () => {
      clearTimeout(timer);
      timer = setTimeout(ask, 400);
    };
    form.addEventListener("input", later);
    form.addEventListener("change", later);
  }

  function updateSpend(frame) {
    const box = document.getElementById("spend");
    const fresh = fromHtml(frame.html);
    if (box && fresh) box.replaceWith(fresh);
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
  document.querySelectorAll("form[data-compare-estimate]").forEach(wireCompareEstimate);
})();
