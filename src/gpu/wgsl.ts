// WGSL templates: plain .wgsl files with a closed set of {{PLACEHOLDERS}} for storage element types. Everything
// else that varies (tile sizes, transposes, epilogues) is a pipeline-overridable constant, so one file is one
// kernel family and no shader is assembled from strings.

export type ElementType = 'f32' | 'f16';

/** The only placeholders a template may use. */
export const PLACEHOLDERS = ['ELEM_A', 'ELEM_B', 'ELEM_C', 'ELEM'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];

export class WgslTemplateError extends Error {
  override name = 'WgslTemplateError';
}

/** Rendered text by template, then by types: kernel wrappers build their spec on every dispatch (hundreds per
 *  training step), and substituting over a whole .wgsl file each time showed up in the step's recording time. */
const rendered = new Map<string, Map<string, string>>();

/** Substitutes the placeholders and prepends `enable f16;` when an f16 type is used. Every placeholder in the text
 *  must be given and every given one must appear, so a typo cannot silently leave a template half-filled. */
export function renderWgsl(label: string, template: string, types: Partial<Record<Placeholder, ElementType>> = {}): string {
  let byTypes = rendered.get(template);
  if (!byTypes) rendered.set(template, (byTypes = new Map()));
  const key = PLACEHOLDERS.map((p) => types[p] ?? '').join(',') + (Object.keys(types).length > 0 ? `|${Object.keys(types).join(',')}` : '');
  const hit = byTypes.get(key);
  if (hit !== undefined) return hit;
  const text = substitute(label, template, types);
  byTypes.set(key, text);
  return text;
}

function substitute(label: string, template: string, types: Partial<Record<Placeholder, ElementType>>): string {
  const used = new Set<string>();
  const text = template.replace(/\{\{(\w+)\}\}/g, (_, name: string) => {
    if (!(PLACEHOLDERS as readonly string[]).includes(name)) {
      throw new WgslTemplateError(`${label}: unknown placeholder {{${name}}} (known: ${PLACEHOLDERS.join(', ')})`);
    }
    const value = types[name as Placeholder];
    if (!value) throw new WgslTemplateError(`${label}: placeholder {{${name}}} was not given a type`);
    used.add(name);
    return value;
  });
  for (const name of Object.keys(types)) {
    if (!used.has(name)) throw new WgslTemplateError(`${label}: type given for {{${name}}}, which the template does not use`);
  }
  const needsF16 = Object.values(types).includes('f16');
  // On the same line as the first line of the file, so compile errors keep the .wgsl file's line numbers.
  return needsF16 ? `enable f16; ${text}` : text;
}
