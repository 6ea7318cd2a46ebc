// The TraceQL editor: a textarea with the server's syntax error marked at
// its position and suggestions at the caret (attributes and values from
// Tempo's tag endpoints, operators, spanset operators, pipeline stages).
//
// A textarea cannot style parts of its text, so a "backdrop" div behind it
// holds the same text with the error wrapped in a <mark>; the textarea is
// transparent over it. A hidden twin of the textarea measures where the
// caret is, to place the suggestion list under it. Both copy the
// textarea's font, padding and wrapping through shared CSS.

import { h, mount } from '../dom.js';
import { applyCompletion, completionContext, completions, errorRange, offsetAt, parseErrorPosition } from '../traceql.js';

let listIds = 0;

/**
 * Creates the editor. `fetchTags()` resolves to the tags endpoint's answer;
 * `fetchValues(attribute)` to [{type, value}]; both are called lazily and
 * cached. `onSubmit()` runs on Ctrl/Cmd+Enter.
 */
export function traceqlEditor({ id, value = '', fetchTags, fetchValues, onSubmit, describedBy }) {
  const listId = `tql-list-${++listIds}`;
  const input = h('textarea', {
    id,
    name: 'q',
    class: 'tql-input',
    rows: 4,
    spellcheck: 'false',
    autocomplete: 'off',
    autocapitalize: 'off',
    role: 'combobox',
    'aria-autocomplete': 'list',
    'aria-expanded': 'false',
    'aria-controls': listId,
    'aria-describedby': describedBy,
    placeholder: '{ resource.service.name = "frontend" && status = error }',
  });
  input.value = value;
  const backdrop = h('div', { class: 'tql-backdrop tql-text', 'aria-hidden': 'true' });
  const measure = h('div', { class: 'tql-measure tql-text', 'aria-hidden': 'true' });
  const list = h('ul', { id: listId, class: 'tql-completions', role: 'listbox', hidden: true, 'aria-label': 'Suggestions' });
  const message = h('p', { class: 'tql-error', role: 'alert', id: `${id}-error` });
  const el = h('div', { class: 'tql-editor' }, h('div', { class: 'tql-box' }, backdrop, input, measure, list), message);

  let tags = null;
  let tagsPromise = null;
  const valueCache = new Map();
  let items = [];
  let active = 0;
  let ctx = null;
  let generation = 0;

  const loadTags = () => {
    if (!tagsPromise) tagsPromise = fetchTags().then((t) => (tags = t), () => (tags = null));
    return tagsPromise;
  };
  const loadValues = (attribute) => {
    if (!valueCache.has(attribute)) valueCache.set(attribute, fetchValues(attribute).catch(() => []));
    return valueCache.get(attribute);
  };

  // ---- error mark
  let error = null;
  const drawBackdrop = () => {
    const text = input.value;
    if (!error) {
      backdrop.replaceChildren(text);
      return;
    }
    const { start, end } = error.range;
    const mark = h('mark', { class: start === end ? 'tql-mark tql-mark-end' : 'tql-mark', text: start === end ? ' ' : text.slice(start, end) });
    // The trailing newline keeps a last empty line as tall as the textarea's.
    backdrop.replaceChildren(text.slice(0, start), mark, `${text.slice(end)}\n`);
    backdrop.scrollTop = input.scrollTop;
  };

  /** Shows a server error; marks its position when the message names one. Null clears. */
  const setError = (text) => {
    if (!text) {
      error = null;
      message.replaceChildren();
      input.removeAttribute('aria-invalid');
      el.classList.remove('has-error');
      drawBackdrop();
      return;
    }
    const pos = parseErrorPosition(text);
    const query = input.value;
    const offset = pos ? offsetAt(query, pos.line, pos.column) : null;
    error = pos ? { range: errorRange(query, offset), pos } : null;
    input.setAttribute('aria-invalid', 'true');
    el.classList.add('has-error');
    mount(
      message,
      pos ? h('strong', { class: 'tql-error-pos', text: `Line ${pos.line}, column ${pos.column}: ` }) : null,
      text.trim(),
    );
    drawBackdrop();
    if (pos) {
      input.focus();
      input.setSelectionRange(error.range.start, error.range.end);
    }
  };

  // ---- suggestions
  const close = () => {
    items = [];
    list.hidden = true;
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
  };

  const caretPoint = (offset) => {
    const probe = h('span', { text: '\u200b' });
    measure.replaceChildren(input.value.slice(0, offset), probe);
    return { left: probe.offsetLeft, top: probe.offsetTop + probe.offsetHeight - input.scrollTop };
  };

  const show = (found) => {
    items = found.slice(0, 50);
    if (!items.length) return close();
    active = 0;
    list.replaceChildren(
      ...items.map((item, i) =>
        h(
          'li',
          {
            id: `${listId}-${i}`,
            role: 'option',
            class: 'tql-option',
            'aria-selected': String(i === active),
            dataset: { label: item.label },
            onmousedown: (e) => e.preventDefault(), // keep the textarea focused
            onclick: () => accept(i),
          },
          h('code', { class: 'tql-option-label', text: item.label }),
          item.detail ? h('span', { class: 'tql-option-detail', text: item.detail }) : null,
        ),
      ),
    );
    const at = caretPoint(ctx.from);
    // CSSOM, not a style attribute: allowed under a strict CSP.
    list.style.left = `${Math.min(at.left, Math.max(0, input.clientWidth - 260))}px`;
    list.style.top = `${Math.min(at.top + 4, input.offsetHeight)}px`;
    list.hidden = false;
    input.setAttribute('aria-expanded', 'true');
    input.setAttribute('aria-activedescendant', `${listId}-0`);
  };

  const move = (delta) => {
    if (!items.length) return;
    list.children[active]?.setAttribute('aria-selected', 'false');
    active = (active + delta + items.length) % items.length;
    const li = list.children[active];
    li.setAttribute('aria-selected', 'true');
    li.scrollIntoView({ block: 'nearest' });
    input.setAttribute('aria-activedescendant', li.id);
  };

  /** Suggests for the caret; `explicit` (Ctrl+Space) also where nothing was typed yet. */
  const suggest = async (explicit = false) => {
    const mine = ++generation;
    const caret = input.selectionStart;
    if (caret !== input.selectionEnd) return close();
    ctx = completionContext(input.value, caret);
    if (!ctx.kind) return close();
    let values = null;
    if (ctx.kind === 'attribute') await loadTags();
    if (ctx.kind === 'value' && ctx.attribute) values = await loadValues(ctx.attribute);
    if (mine !== generation || document.activeElement !== input) return;
    const found = completions(ctx, { tags, values });
    // Typing a name shows matches; after a space or a bracket, everything.
    if (!explicit && !ctx.prefix && !/[\s{(|,=<>~!&]$/.test(input.value.slice(0, caret))) return close();
    show(found);
  };

  const accept = (i) => {
    const item = items[i];
    if (!item || !ctx) return;
    const next = applyCompletion(input.value, ctx, item);
    input.value = next.text;
    input.setSelectionRange(next.caret, next.caret);
    close();
    onEdit();
    suggest();
  };

  const onEdit = () => {
    if (error) setError(null);
    else drawBackdrop();
  };

  input.addEventListener('input', () => {
    onEdit();
    suggest();
  });
  input.addEventListener('focus', () => {
    loadTags();
  });
  input.addEventListener('blur', () => close());
  input.addEventListener('scroll', () => {
    backdrop.scrollTop = input.scrollTop;
  });
  input.addEventListener('click', () => close());
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      close();
      onSubmit();
      return;
    }
    if (e.key === ' ' && e.ctrlKey) {
      e.preventDefault();
      suggest(true);
      return;
    }
    if (list.hidden) return;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      move(e.key === 'ArrowDown' ? 1 : -1);
    } else if (e.key === 'Enter' || e.key === 'Tab') {
      e.preventDefault();
      accept(active);
    } else if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      close();
    }
  });
  drawBackdrop();

  return {
    el,
    input,
    setError,
    value: () => input.value,
  };
}
