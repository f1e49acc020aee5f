/**
 * tfjs-core's Node entry registers no gradient functions (its ESM build does, but that build's directory
 * imports do not resolve under Node's ESM loader). The union package's Node bundle registers all of them
 * into the process-global gradient registry that tfjs-core's engine reads, so importing it once is enough.
 */
import '@tensorflow/tfjs';
