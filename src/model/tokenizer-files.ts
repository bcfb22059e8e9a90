// A model folder's tokenizer files → its tokenizer and chat template: tokenizer.json, tokenizer_config.json and
// chat_template.jinja (the Models screen, the CLI). Each file's size is checked before it is read (a hostile folder
// cannot make the tab read gigabytes), and every failure is a TokenizerError or ChatTemplateError whose message
// starts with the folder's name, then names the file and what in it is wrong.
import { readText, type ModelFiles } from './checkpoint.ts';
import { ChatTemplate, ChatTemplateError } from './chat-template.ts';
import { HfTokenizer, TokenizerError } from './tokenizer.ts';

/** The largest file of each kind read: the biggest real tokenizer.json files are ~35 MB (Gemma 3's). */
export const TOKENIZER_FILE_LIMITS: Readonly<Record<string, number>> = {
  'tokenizer.json': 128 * 1024 * 1024,
  'tokenizer_config.json': 16 * 1024 * 1024,
  'chat_template.jinja': 1024 * 1024,
};

export interface LoadedTokenizer {
  tokenizer: HfTokenizer;
  template: ChatTemplate;
}

/** A tokenizer file's text (null when the folder has none), refused with a TokenizerError above its size limit before
 *  any of it is read. */
export async function optionalText(files: ModelFiles, path: string): Promise<string | null> {
  const source = await files.open(path);
  if (!source) return null;
  try {
    const limit = TOKENIZER_FILE_LIMITS[path];
    if (limit !== undefined && source.size > limit) {
      throw new TokenizerError(`${path}: ${source.size} bytes, more than the ${limit} bytes a ${path} may take (is it the right file?)`);
    }
    return await readText(source);
  } finally {
    await source.close?.();
  }
}

/** The tokenizer and chat template of a folder, or null when it has no tokenizer.json. */
export async function loadTokenizerFiles(files: ModelFiles): Promise<LoadedTokenizer | null> {
  try {
    const tokenizerJson = await optionalText(files, 'tokenizer.json');
    if (tokenizerJson === null) return null;
    const tokenizer = HfTokenizer.fromJson(tokenizerJson, await optionalText(files, 'tokenizer_config.json'));
    const jinjaFile = await optionalText(files, 'chat_template.jinja');
    return { tokenizer, template: ChatTemplate.forTokenizer(tokenizer, { jinjaFile }) };
  } catch (e) {
    if (e instanceof TokenizerError) throw new TokenizerError(`${files.name}: ${e.message}`);
    if (e instanceof ChatTemplateError) throw new ChatTemplateError(`${files.name}: ${e.message}`);
    throw e;
  }
}
