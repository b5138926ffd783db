// A virtualised actor list: only the rows in view (plus a few) exist in the
// DOM, and rows are fetched a page at a time as they scroll into view, so ten
// thousand actors cost what thirty do.
const ROW_PX = 24;
const PAGE_ROWS = 200;
const OVERSCAN_ROWS = 8;

/** @import { ActorPage, ActorRow } from './api.js' */

export class ActorList {
  /**
   * @param {HTMLElement} container The scrolling list; its `.vlist-spacer` child gives it the full list's height.
   * @param {(offset: number, limit: number) => Promise<ActorPage>} fetchPage
   * @param {(row: ActorRow) => void} onSelect
   * @param {(total: number) => void} onTotal
   */
  constructor(container, fetchPage, onSelect, onTotal) {
    this.container = container;
    /** @type {HTMLElement | null} */
    const spacer = container.querySelector('.vlist-spacer');
    if (spacer === null) throw new Error('the actor list has no .vlist-spacer');
    this.spacer = spacer;
    this.fetchPage = fetchPage;
    this.onSelect = onSelect;
    this.onTotal = onTotal;
    /** @type {Map<number, ActorRow[]>} page → its rows */
    this.pages = new Map();
    /** @type {Set<number>} pages being fetched */
    this.loading = new Set();
    this.total = 0;
    /** @type {Map<number, HTMLElement>} index → its row in the DOM */
    this.rows = new Map();
    /** @type {string | null} the selected actor's id */
    this.selected = null;
    this.generation = 0;
    this.frame = 0;
    container.addEventListener('scroll', () => this.schedule());
  }

  /** Starts over (a new filter): drops cached pages and loads the first one. */
  async reset() {
    this.generation++;
    this.pages.clear();
    this.loading.clear();
    for (const row of this.rows.values()) row.remove();
    this.rows.clear();
    this.container.scrollTop = 0;
    await this.load(0);
  }

  /** Reloads the pages in view (the actors changed), keeping the scroll position. */
  async refresh() {
    const first = Math.floor(this.container.scrollTop / ROW_PX);
    const generation = ++this.generation;
    this.pages.clear();
    this.loading.clear();
    await this.load(Math.floor(first / PAGE_ROWS), generation);
  }

  /**
   * @param {number} page
   * @param {number} [generation] The list's generation when the load was asked for (a newer one drops the answer).
   */
  async load(page, generation = this.generation) {
    if (this.pages.has(page) || this.loading.has(page)) return;
    this.loading.add(page);
    try {
      const result = await this.fetchPage(page * PAGE_ROWS, PAGE_ROWS);
      if (generation !== this.generation) return;
      this.pages.set(page, result.rows);
      if (result.total !== this.total) {
        this.total = result.total;
        this.spacer.style.height = `${this.total * ROW_PX}px`;
        this.onTotal(this.total);
      }
      this.render();
    } finally {
      this.loading.delete(page);
    }
  }

  schedule() {
    if (this.frame !== 0) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  render() {
    const top = this.container.scrollTop;
    const first = Math.max(0, Math.floor(top / ROW_PX) - OVERSCAN_ROWS);
    const last = Math.min(this.total - 1, Math.ceil((top + this.container.clientHeight) / ROW_PX) + OVERSCAN_ROWS);
    /** @type {Set<number>} */
    const wanted = new Set();
    for (let index = first; index <= last; index++) {
      const page = Math.floor(index / PAGE_ROWS);
      const data = this.pages.get(page)?.[index - page * PAGE_ROWS];
      if (data === undefined) {
        void this.load(page);
        continue;
      }
      wanted.add(index);
      let row = this.rows.get(index);
      if (row === undefined || row.dataset.id !== data.id) {
        row?.remove();
        row = this.makeRow(data, index);
        this.rows.set(index, row);
        this.container.appendChild(row);
      } else if (row.dataset.state !== data.state) {
        row.dataset.state = data.state;
        // makeRow gives every row four cells: id, kind, state, geozone.
        const stateCell = row.children[2];
        if (stateCell === undefined) throw new Error('an actor row without its state cell');
        stateCell.textContent = data.state;
      }
    }
    for (const [index, row] of this.rows) {
      if (wanted.has(index)) continue;
      row.remove();
      this.rows.delete(index);
    }
  }

  /**
   * @param {ActorRow} data
   * @param {number} index
   */
  makeRow(data, index) {
    const row = document.createElement('div');
    row.className = 'vrow';
    row.dataset.id = data.id;
    row.dataset.state = data.state;
    row.dataset.testid = 'actor-row';
    row.setAttribute('data-testid', 'actor-row');
    row.style.transform = `translateY(${index * ROW_PX}px)`;
    [data.id, data.kind, data.state, data.geozone].forEach((value, column) => {
      const cell = document.createElement('span');
      if (column === 0) cell.className = 'id';
      cell.textContent = value;
      row.appendChild(cell);
    });
    if (data.id === this.selected) row.classList.add('selected');
    row.addEventListener('click', () => {
      this.selected = data.id;
      for (const other of this.rows.values()) other.classList.toggle('selected', other.dataset.id === data.id);
      this.onSelect(data);
    });
    return row;
  }
}
