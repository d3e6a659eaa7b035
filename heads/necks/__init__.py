"""The detector parts that each neck (`model.neck`) builds on a ResNet: `fpn` (P2-P6 on C2-C5, RoIAlign on P2-P5)
and `c4` (RPN and RoIAlign on C4, res5 as the box head, as the paper's Faster R-CNN). Each gives `build_parts` and
the names of the options it takes."""
