// DOM helpers. Data (camera names, ids, labels, error messages) only ever reaches the page as
// text nodes or attribute values set through the DOM API: never through innerHTML.

/**
 * Create an element.
 * @param {string} tag
 * @param {Record<string, any>} [props] class, text, style (object), dataset (object), on<event>
 *   (listener), or a plain attribute.
 * @param {...(Node|string|number|null|undefined|false|Array)} children text or nodes
 * @returns {HTMLElement}
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = String(value);
    else if (key === 'style') Object.assign(node.style, value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

/** Append text or nodes (nested arrays allowed); strings become text nodes. */
export function append(node, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace all children of ``node``. */
export function setChildren(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** Set text only when it changed (keeps selections and avoids layout work on every poll). */
export function setText(node, text) {
  const value = String(text);
  if (node.textContent !== value) node.textContent = value;
}

export const $ = (selector, root = document) => root.querySelector(selector);
