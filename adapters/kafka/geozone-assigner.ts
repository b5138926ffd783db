import kafkajs, { type PartitionAssigner } from 'kafkajs';

// kafkajs is CommonJS; Node's named-export detection misses some of its members: take them off the default export.
const { AssignerProtocol } = kafkajs;

/**
 * Shard ownership by a Kafka consumer group. The input topics are partitioned by
 * geozone (partition i = the i-th geozone in sorted order), so a geozone is owned
 * by whichever member holds partition i of every input topic. The stock assigners
 * spread partitions of different topics independently; this one hands all
 * partitions with the same index to the same member, and leaves partitions beyond
 * the geozone count unassigned (they belong to no geozone of this federation).
 */
export const GEOZONE_ASSIGNER = 'ArcnetGeozoneAssigner';

/** Partition index → member, for `geozoneCount` partitions and the given members. */
export function assignByIndex(memberIds: readonly string[], geozoneCount: number): Map<number, string> {
  const members = [...memberIds].sort();
  const out = new Map<number, string>();
  if (members.length === 0) return out;
  for (let index = 0; index < geozoneCount; index++) out.set(index, members[index % members.length] as string);
  return out;
}

/**
 * With `wholeTopics`, there is one shard and every partition of every input topic
 * is its (a process role with one shard for the whole federation, such as the
 * central orchestrator reading every region's summaries): one member gets them all.
 */
export function geozoneAssigner(geozoneCount: number, options: { wholeTopics?: boolean } = {}): PartitionAssigner {
  return ({ cluster }) => ({
    name: GEOZONE_ASSIGNER,
    version: 0,
    assign({ members, topics }) {
      const indexes = assignByIndex(
        members.map((m) => m.memberId),
        geozoneCount,
      );
      const first = indexes.get(0);
      const byIndex = options.wholeTopics === true ? { get: (_partition: number) => first } : indexes;
      const assignment = new Map<string, Record<string, number[]>>(members.map((m) => [m.memberId, {}]));
      for (const topic of topics) {
        for (const { partitionId } of cluster.findTopicPartitionMetadata(topic)) {
          const member = byIndex.get(partitionId);
          if (member === undefined) continue;
          const mine = assignment.get(member) as Record<string, number[]>;
          (mine[topic] ??= []).push(partitionId);
        }
      }
      return Promise.resolve(
        [...assignment].map(([memberId, topicPartitions]) => ({
          memberId,
          memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 0, assignment: topicPartitions, userData: Buffer.alloc(0) }),
        })),
      );
    },
    protocol({ topics }) {
      return { name: GEOZONE_ASSIGNER, metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }) };
    },
  });
}

